"""Shared helpers of the wire form: key case, numbers, timestamps, enum names."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..errors import InvalidArgument
from ..types import TunedModelState, as_utc

# -- keys, numbers, times ----------------------------------------------------------------


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def snake_keys(value: Any) -> Any:
    """Every key of a JSON value in snake_case (``@type`` is left alone)."""
    if isinstance(value, dict):
        return {(k if k.startswith("@") else snake(k)): snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


def timestamp(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return as_utc(value).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    # fromisoformat takes at most microseconds; Google writes nanoseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
    return dt.datetime.fromisoformat(text)


def duration(seconds: float) -> str:
    """A ``google.protobuf.Duration`` in proto-JSON: ``"2.5s"``."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def parse_duration(value: Any, field: str) -> float:
    """Seconds from a proto-JSON ``Duration`` (``"2.5s"``; a bare number of seconds too)."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)s", text):
        return float(text[:-1])
    if isinstance(text, (int, float)) and not isinstance(text, bool) and abs(text) < 1e300:
        return float(text)
    raise InvalidArgument(f'{field}: expected a duration such as "2.5s", got {value!r}')


def proto_int(value: Any) -> Any:
    """An int from a number or numeric string (proto-JSON allows both); else as given."""
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def proto_float(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def json_object(value: Any, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field}: expected an object, not {type(value).__name__}")
    return value


def compact(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def model_state(value: Any) -> TunedModelState:
    if isinstance(value, str) and not value.isdigit():
        return TunedModelState[value]
    return TunedModelState(int(value or 0))
