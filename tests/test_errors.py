"""The one error table: each error's Google status, gRPC code and HTTP status, both ways."""

from __future__ import annotations

import pytest

from tunesmith import errors


@pytest.mark.parametrize(
    "name", [n for n in errors.__all__ if n[0].isupper() and n != "TunesmithError"]
)
def test_every_error_comes_back_from_its_status_and_its_code(name):
    cls = getattr(errors, name)
    assert type(errors.from_status(cls.status, "m")) is cls
    assert type(errors.from_grpc_code(cls.grpc_code, "m")) is cls
    assert cls("m").to_json() == {
        "error": {"code": cls.http_status, "message": "m", "status": cls.status}
    }


def test_http_statuses_map_to_the_first_error_of_that_status_or_stay_unknown():
    assert (
        type(errors.from_http_status(400, "m")) is errors.InvalidArgument
    )  # not FAILED_PRECONDITION
    assert type(errors.from_http_status(404, "m")) is errors.NotFound
    assert type(errors.from_http_status(405, "m")) is errors.Unimplemented
    assert type(errors.from_http_status(503, "m")) is errors.Unavailable
    odd = errors.from_http_status(413, "too large")
    assert odd.to_json() == {"error": {"code": 413, "message": "too large", "status": "UNKNOWN"}}
