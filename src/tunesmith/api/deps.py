"""What a route needs, as ``Annotated`` aliases: the service, the caller, a body, the API
version."""

from __future__ import annotations

import functools
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..records.permissions import Caller
from ..service import Service
from .body import json_body


def get_service(request: Request) -> Service:
    return request.app.state.service


def api_key(request: Request) -> str | None:
    """The key from ``x-goog-api-key``, ``?key=`` or ``Authorization: Bearer``."""
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if not key:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            key = token.strip()
    return key


async def get_caller(request: Request) -> Caller | None:
    """The caller: the key's user and groups; None when the server runs open (no keys)."""
    service: Service = request.app.state.service
    return await run_in_threadpool(service.authenticate, api_key(request))


def api_version(request: Request) -> str:
    """The API version the request came in on: the prefix its route is mounted under
    (``v1beta``, ``v1beta3`` or ``v1``), so answers name that version's messages."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]  # behind a proxy that mounts the server under a prefix
    return path.lstrip("/").split("/", 1)[0]


def tunesmith_fields(request: Request) -> bool:
    """Whether the answer may carry tunesmith's own fields where Google's message has none
    (an operation's ``metadata.phase``). Google's clients parse operations strictly and
    crash on an unknown field (google-generativeai 0.8.6: ``ParseError``); they, like every
    Google client library, name themselves in ``x-goog-api-client``. Every other caller (the
    tunesmith SDK, the console, curl) gets the fields."""
    return "x-goog-api-client" not in request.headers


ServiceDep = Annotated[Service, Depends(get_service)]
CallerDep = Annotated[Caller | None, Depends(get_caller)]
Body = Annotated[Any, Depends(json_body)]
TunesmithFields = Annotated[bool, Depends(tunesmith_fields)]
ApiVersion = Annotated[str, Depends(api_version)]


async def call(fn, *args, **kwargs):
    """Run a (blocking) service method off the event loop."""
    return await run_in_threadpool(fn, *args, **kwargs)


# Calls that wait (``:wait``) hold a thread each for seconds: their own limiter keeps many
# waiting callers from taking the threads every other call runs on.
_WAITING = anyio.CapacityLimiter(1000)


async def call_waiting(fn, *args, **kwargs):
    """:func:`call` for a service method that waits."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=_WAITING)
