"""Request-level guards, in one middleware: body size and requests per minute per key.

Everything else about limits (examples per data set, characters per text, page size, ids,
jobs per user) is the service's. Here, before any route runs:

* a body over ``max_request_bytes`` is refused with Google's answer (400 INVALID_ARGUMENT,
  "Request payload size exceeds the limit: N bytes."), without reading more of it than the
  limit;
* each API key may make ``requests_per_minute`` requests to the API (``/v1*`` and
  ``/openai/v1``, one budget per key for both dialects), as a token
  bucket refilled evenly over the minute; past it the answer is 429 RESOURCE_EXHAUSTED with
  ``Retry-After`` in seconds. Requests without a key are not counted: a server without keys
  listens on loopback only, and one with keys answers them 401.
* reading operations (``GET`` of ``.../operations/ID`` or of an operations list, its
  ``POST .../operations/ID:wait``, and of an
  OpenAI fine-tuning job or its events, which OpenAI's client polls) draws on a
  bucket of its own per key instead, at the same rate but holding only a second's worth
  (``POLL_BURST_SECONDS``): polling never spends the key's budget for its other calls.
  google-generativeai's ``wait_bar`` polls in a loop without sleeping and crashes on a 429,
  so a read past that rate is *paced* rather than refused: it owes the bucket and is
  answered after the wait. A client polling one read at a time therefore waits at most one
  interval per read and is never refused; reads sent all at once pile up debt, and a read
  that would have to wait more than ``MAX_PACE`` seconds (or two intervals, at a very low
  rate) is answered 429 at once, without counting it. A flood of either kind thus gets 429s
  cheaply, in this middleware, and other keys are answered meanwhile: a paced read sleeps
  without holding the event loop or a thread.

It also keeps keys out of the access log: uvicorn logs each request's path with its query,
and ``?key=...`` would otherwise be written there.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import threading
import time
from urllib.parse import parse_qsl

from ..errors import InvalidArgument, ResourceExhausted, TunesmithError
from ..settings import Settings
from .openai import errors as openai_errors

_KEY_IN_QUERY = re.compile(r"((?:^|[?&;])key=)[^&;\s]*", re.IGNORECASE)
MAX_BUCKETS = 10_000
MAX_PACE = 5.0
"""Longest an operation read is held before it is answered (two reads' interval if that is
longer, at a very low rate); a read that would wait longer is answered 429."""
POLL_BURST_SECONDS = 1.0
"""The operation-read bucket holds this many seconds' worth of reads (at least one read)."""
# GET of tunedModels/M/operations/OP, tunedModels/M/operations or operations (tunesmith's list),
# and the same job as OpenAI's client polls it (a fine-tuning job, its events).
_OPERATION_READ = re.compile(
    r"^(?:/v1[a-z0-9]*/(?:tunedModels/[^/]+/)?operations(?:/[^/:]+)?"
    r"|/openai/v1/fine_tuning/jobs/[^/]+(?:/events)?)$"
)
_OPERATION_WAIT = re.compile(r"^/v1[a-z0-9]*/tunedModels/[^/]+/operations/[^/:]+:wait$")


def _reads_operation(scope) -> bool:
    pattern = {"GET": _OPERATION_READ, "POST": _OPERATION_WAIT}.get(scope["method"])
    return pattern is not None and pattern.match(scope["path"]) is not None


def redact(text: str) -> str:
    """``?key=SECRET`` in a path or log line to ``?key=REDACTED``."""
    return _KEY_IN_QUERY.sub(r"\1REDACTED", text)


class RedactKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def _error(scope, e: TunesmithError, headers: list | None = None):
    """``e`` as an answer in the dialect of the request's path (Google's or OpenAI's)."""
    if openai_errors.is_openai(scope):
        status, body_json, extra = openai_errors.describe(e)
        body = json.dumps(body_json)
        headers = (headers or []) + [(k.encode(), v.encode()) for k, v in extra.items()]
    else:
        status, body = e.http_status, json.dumps(e.to_json(), indent=2)
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return status, head + (headers or []), body.encode()


class TokenBuckets:
    """``per_minute`` requests per name, refilled evenly, holding at most ``burst`` (default:
    a minute's worth); thread-safe, bounded in memory."""

    def __init__(self, per_minute: int, burst: float | None = None, clock=time.monotonic):
        self.per_minute = per_minute
        self.capacity = float(burst if burst is not None else per_minute)
        self.refill = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, name: str, pace_up_to: float = 0.0) -> float:
        """0 when a request of ``name`` may go ahead now, else the seconds it would wait.

        A request whose wait is at most ``pace_up_to`` seconds is counted anyway: it owes the
        bucket, and the caller waits, then goes ahead. A longer wait is a refusal and is not
        counted, so refused requests never push the bucket further into debt.
        """
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.get(name, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.refill)
            if tokens >= 1:
                self._buckets[name] = (tokens - 1, now)
                self._prune(now)
                return 0.0
            wait = (1 - tokens) / self.refill
            self._buckets[name] = (tokens - 1 if wait <= pace_up_to else tokens, now)
            return wait

    def _prune(self, now: float) -> None:
        if len(self._buckets) <= MAX_BUCKETS:
            return
        full = self.capacity / self.refill  # a bucket idle this long is full again
        for name, (_, then) in list(self._buckets.items()):
            if now - then >= full:
                del self._buckets[name]
        if len(self._buckets) > MAX_BUCKETS:  # still too many: forget the oldest half
            oldest = sorted(self._buckets.items(), key=lambda kv: kv[1][1])
            for name, _ in oldest[: len(oldest) // 2]:
                del self._buckets[name]


def _caller_name(scope) -> str | None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    key = headers.get("x-goog-api-key")
    if not key:
        query = scope.get("query_string", b"").decode("latin-1")
        key = dict(parse_qsl(query)).get("key")
    if not key:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else None
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return None


class GuardMiddleware:
    def __init__(self, app, settings: Settings, clock=time.monotonic, sleep=asyncio.sleep):
        self.app = app
        self.max_bytes = settings.max_request_bytes
        self.sleep = sleep
        rpm = settings.requests_per_minute
        self.buckets = TokenBuckets(rpm, clock=clock) if rpm > 0 else None
        burst = max(1.0, rpm / 60.0 * POLL_BURST_SECONDS)
        self.reads = TokenBuckets(rpm, burst=burst, clock=clock) if rpm > 0 else None
        # At a very low rate one read's interval is long: a lone poller must still be paced.
        self.pace = max(MAX_PACE, 2 * 60.0 / rpm) if rpm > 0 else 0.0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _is_api(scope):
            return await self.app(scope, receive, send)
        name = _caller_name(scope) if self.buckets is not None else None
        if name is not None:
            refused = await self._count(scope, name)
            if refused is not None:
                return await _send(send, *refused)
        if self.max_bytes > 0 and scope["method"] in ("POST", "PUT", "PATCH"):
            return await self._limited(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _count(self, scope, name: str):
        """Count the caller's request: None to go ahead (after pacing it), else a 429."""
        buckets, reads = self.buckets, self.reads
        assert buckets is not None and reads is not None  # called only when limits are on
        if _reads_operation(scope):
            wait = reads.take(name, pace_up_to=self.pace)
            if wait <= self.pace:
                if wait:
                    await self.sleep(wait)
                return None
            seconds = max(1, math.ceil(wait - self.pace))
            what = "Too many operation reads at once"
        else:
            wait = buckets.take(name)
            if not wait:
                return None
            seconds = max(1, math.ceil(wait))
            what = "Too many requests"
        return _error(
            scope,
            ResourceExhausted(
                f"{what}: over {buckets.per_minute} per minute for this API key; "
                f"retry after {seconds} s"
            ),
            [(b"retry-after", str(seconds).encode())],
        )

    async def _limited(self, scope, receive, send):
        too_big = _error(
            scope,
            InvalidArgument(f"Request payload size exceeds the limit: {self.max_bytes} bytes."),
        )
        for name, value in scope["headers"]:
            if name.lower() == b"content-length":
                try:
                    if int(value) > self.max_bytes:
                        return await _send(send, *too_big)
                except ValueError:
                    pass
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await _send(send, *too_big)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def _is_api(scope) -> bool:
    """Google's routes (``/v1beta``, ``/v1beta3``, ``/v1``) and OpenAI's (``/openai/v1``)."""
    return scope["path"].startswith("/v1") or openai_errors.is_openai(scope)


async def _send(send, status: int, headers: list, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install(app, settings: Settings) -> None:
    app.add_middleware(GuardMiddleware, settings=settings)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactKeys) for f in access.filters):
        access.addFilter(RedactKeys())
