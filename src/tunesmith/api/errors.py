"""One place where failures become Google's error shape.

``{"error": {"code": <http>, "message": ..., "status": ...}}`` for typed service errors,
for request validation (always 400 INVALID_ARGUMENT naming the field, never FastAPI's 422),
for unknown routes, for a database that is briefly gone (503 UNAVAILABLE with Retry-After),
and for anything unexpected (500 INTERNAL, without a traceback).

Requests on the OpenAI dialect's routes (``/openai/v1``) get the same errors in OpenAI's
envelope instead (:mod:`.openai.errors`).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException

from ..errors import (
    Internal,
    InvalidArgument,
    NotFound,
    TunesmithError,
    Unavailable,
    Unimplemented,
    from_http_status,
)
from .openai import errors as openai_errors
from .pretty import PrettyJSONResponse

log = logging.getLogger("tunesmith.api")

UNAVAILABLE = "The database is unavailable for the moment; retry shortly."


def error_response(e: TunesmithError, request: Request | None = None) -> JSONResponse:
    """``e`` in the shape of the dialect ``request`` came in on (Google's by default)."""
    if request is not None and openai_errors.is_openai(request.scope):
        return openai_errors.error_response(e)
    return PrettyJSONResponse(e.to_json(), status_code=e.http_status)


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("query", "path", "body", "header")]
    return ".".join(parts) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(TunesmithError)
    async def _typed(request: Request, e: TunesmithError):
        return error_response(e, request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        problems = [f"{_field(err['loc'])}: {err['msg']}" for err in e.errors()]
        return error_response(InvalidArgument("; ".join(problems) or "invalid request"), request)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, e: HTTPException):
        error = from_http_status(e.status_code, e.detail if isinstance(e.detail, str) else "")
        if isinstance(error, NotFound):
            error.message = f"{request.method} {request.url.path}: no such resource or method"
        elif isinstance(error, Unimplemented):
            error.message = f"{request.method} is not allowed on {request.url.path}"
        if openai_errors.is_openai(request.scope):
            return openai_errors.status_response(error.http_status, error.message, "unknown_url")
        return error_response(error, request)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, e: DBAPIError):
        if not e.connection_invalidated and not isinstance(e, OperationalError):
            return await _unexpected(request, e)
        # The database is gone for a moment (restarted, network): say so, and when to retry.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, e.orig)
        response = error_response(Unavailable(UNAVAILABLE), request)
        response.headers["Retry-After"] = "2"
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        internal = Internal(f"internal error ({type(e).__name__}); see the server log")
        return error_response(internal, request)
