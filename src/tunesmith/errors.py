"""Typed errors, and the one table that maps them to Google's codes.

    TunesmithError                 (status, gRPC code, HTTP status)
    ├── InvalidArgument            INVALID_ARGUMENT      3  400
    ├── FailedPrecondition         FAILED_PRECONDITION   9  400
    ├── Unauthenticated            UNAUTHENTICATED      16  401
    ├── PermissionDenied           PERMISSION_DENIED     7  403
    ├── NotFound                   NOT_FOUND             5  404
    ├── AlreadyExists              ALREADY_EXISTS        6  409
    ├── ResourceExhausted          RESOURCE_EXHAUSTED    8  429
    ├── Cancelled                  CANCELLED             1  499
    ├── DeadlineExceeded           DEADLINE_EXCEEDED     4  504
    ├── Unavailable                UNAVAILABLE          14  503
    ├── Unimplemented              UNIMPLEMENTED        12  405 (a route without the method)
    └── Internal                   INTERNAL             13  500

The service raises these; the HTTP layer turns them into
``{"error": {"code": <http>, "message": ..., "status": ...}}`` and the remote SDK turns that
back into the same class with :func:`from_status`. A failed tuning operation carries
``{"code": <gRPC int>, "message": ...}``, which :func:`from_grpc_code` maps back.
"""

from __future__ import annotations


class TunesmithError(Exception):
    """Base of every error tunesmith raises on purpose."""

    status: str = "UNKNOWN"
    grpc_code: int = 2
    http_status: int = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict:
        return {"error": {"code": self.http_status, "message": self.message, "status": self.status}}


class InvalidArgument(TunesmithError, ValueError):
    status, grpc_code, http_status = "INVALID_ARGUMENT", 3, 400


class FailedPrecondition(TunesmithError):
    status, grpc_code, http_status = "FAILED_PRECONDITION", 9, 400


class Unauthenticated(TunesmithError):
    status, grpc_code, http_status = "UNAUTHENTICATED", 16, 401


class PermissionDenied(TunesmithError):
    status, grpc_code, http_status = "PERMISSION_DENIED", 7, 403


class NotFound(TunesmithError, LookupError):
    status, grpc_code, http_status = "NOT_FOUND", 5, 404


class AlreadyExists(TunesmithError):
    status, grpc_code, http_status = "ALREADY_EXISTS", 6, 409


class ResourceExhausted(TunesmithError):
    status, grpc_code, http_status = "RESOURCE_EXHAUSTED", 8, 429


class Cancelled(TunesmithError):
    status, grpc_code, http_status = "CANCELLED", 1, 499


class DeadlineExceeded(TunesmithError, TimeoutError):
    status, grpc_code, http_status = "DEADLINE_EXCEEDED", 4, 504


class Unavailable(TunesmithError):
    """Something the service needs is gone for a moment (the database); retry shortly."""

    status, grpc_code, http_status = "UNAVAILABLE", 14, 503


class Unimplemented(TunesmithError):
    status, grpc_code, http_status = "UNIMPLEMENTED", 12, 405


class Internal(TunesmithError):
    status, grpc_code, http_status = "INTERNAL", 13, 500


_CLASSES: tuple[type[TunesmithError], ...] = (
    InvalidArgument,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    ResourceExhausted,
    Cancelled,
    DeadlineExceeded,
    Unavailable,
    Unimplemented,
    Internal,
)
_BY_STATUS = {cls.status: cls for cls in _CLASSES}
_BY_GRPC = {cls.grpc_code: cls for cls in _CLASSES}
# The first class of each HTTP status (400 is INVALID_ARGUMENT, not FAILED_PRECONDITION).
_BY_HTTP = {cls.http_status: cls for cls in reversed(_CLASSES)}


def from_status(status: str, message: str) -> TunesmithError:
    """The error for a Google status name such as ``NOT_FOUND``."""
    return _BY_STATUS.get(status, Internal)(message)


def from_grpc_code(code: int, message: str) -> TunesmithError:
    """The error for a gRPC code, as carried in a failed operation's ``error``."""
    return _BY_GRPC.get(code, Internal)(message)


def from_http_status(code: int, message: str) -> TunesmithError:
    """The error an HTTP status stands for (the web framework's own answers: 404, 405); a
    status no class stands for stays as it is, with Google's UNKNOWN."""
    cls = _BY_HTTP.get(code)
    if cls is not None:
        return cls(message)
    error = TunesmithError(message)
    error.http_status = code
    return error


__all__ = [cls.__name__ for cls in _CLASSES] + [
    "TunesmithError",
    "from_grpc_code",
    "from_http_status",
    "from_status",
]
