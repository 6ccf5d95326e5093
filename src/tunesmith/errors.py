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
    Internal,
)
_BY_STATUS = {cls.status: cls for cls in _CLASSES}
_BY_GRPC = {cls.grpc_code: cls for cls in _CLASSES}


def from_status(status: str, message: str) -> TunesmithError:
    """The error for a Google status name such as ``NOT_FOUND``."""
    return _BY_STATUS.get(status, Internal)(message)


def from_grpc_code(code: int, message: str) -> TunesmithError:
    """The error for a gRPC code, as carried in a failed operation's ``error``."""
    return _BY_GRPC.get(code, Internal)(message)


__all__ = [cls.__name__ for cls in _CLASSES] + ["TunesmithError", "from_status", "from_grpc_code"]
