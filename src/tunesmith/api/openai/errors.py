"""OpenAI's error envelope, mapped from :mod:`tunesmith.errors` in one table.

``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`` with the HTTP status
the ``openai`` client maps to its exceptions (400 ``BadRequestError``, 401
``AuthenticationError``, 403 ``PermissionDeniedError``, 404 ``NotFoundError``, 409
``ConflictError``, 429 ``RateLimitError``, 5xx ``InternalServerError``). The client retries
408, 409, 429 and 5xx unless the answer says ``x-should-retry: false``: an error whose retry
would be wrong (a conflict that will not go away, an internal error that may have followed a
side effect) says so.

Google's routes keep their own shape (:meth:`TunesmithError.to_json`); which one a request
gets depends only on its path (:func:`is_openai`).
"""

from __future__ import annotations

import re

from fastapi.responses import JSONResponse

from ...errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    TunesmithError,
    Unauthenticated,
    Unavailable,
)

PREFIX = "/openai/v1"

# error class -> (OpenAI ``type``, ``code``, whether the client may retry it)
# The HTTP status is the error's own (``http_status``), the same as Google's routes answer.
_TABLE: dict[type[TunesmithError], tuple[str, str, bool]] = {
    InvalidArgument: ("invalid_request_error", "invalid_value", False),
    FailedPrecondition: ("invalid_request_error", "failed_precondition", False),
    Unauthenticated: ("invalid_request_error", "invalid_api_key", False),
    PermissionDenied: ("invalid_request_error", "permission_denied", False),
    NotFound: ("invalid_request_error", "not_found", False),
    AlreadyExists: ("invalid_request_error", "already_exists", False),
    ResourceExhausted: ("requests", "rate_limit_exceeded", True),
    Cancelled: ("invalid_request_error", "cancelled", False),
    DeadlineExceeded: ("server_error", "timeout", True),
    Unavailable: ("server_error", "unavailable", True),
    Internal: ("server_error", "internal_error", False),
}
_FALLBACK = ("server_error", "internal_error", False)
_PARAM = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\[\]]*)[:,] ")


def is_openai(scope) -> bool:
    """Whether a request (its ASGI scope) came in on the OpenAI dialect's routes."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path == PREFIX or path.startswith(PREFIX + "/")


def param_of(message: str) -> str | None:
    """The field an error names: tunesmith's messages start ``field: ...`` (or ``field,
    row/turn N: ...``)."""
    m = _PARAM.match(message)
    return m.group(1) if m else None


def describe(e: TunesmithError) -> tuple[int, dict, dict[str, str]]:
    """The status, body and headers of ``e`` in OpenAI's shape."""
    kind, code, retry = next((row for cls, row in _TABLE.items() if isinstance(e, cls)), _FALLBACK)
    body = {
        "error": {"message": e.message, "type": kind, "param": param_of(e.message), "code": code}
    }
    headers = {} if retry else {"x-should-retry": "false"}
    return e.http_status, body, headers


def error_response(e: TunesmithError, headers: dict[str, str] | None = None) -> JSONResponse:
    status, body, extra = describe(e)
    return JSONResponse(body, status_code=status, headers={**extra, **(headers or {})})


def error_json(e: TunesmithError) -> dict:
    """The body alone (an error inside a stream that has already begun)."""
    return describe(e)[1]


def status_response(
    status: int,
    message: str,
    code: str,
    headers: dict[str, str] | None = None,
    *,
    kind: str = "invalid_request_error",
) -> JSONResponse:
    """An answer that no typed error stands for (an unknown route, the database gone)."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    retry = status >= 500 or status in (408, 409, 429)
    extra = {} if retry else {"x-should-retry": "false"}
    return JSONResponse(body, status_code=status, headers={**extra, **(headers or {})})
