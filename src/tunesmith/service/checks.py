"""The bounds a request's values are checked against: once, for every part of the service.

Each check returns the problems it finds as ``field: what is wrong`` (the field a user
typed), so a caller reports every problem of a request at once.
"""

from __future__ import annotations

from ..errors import InvalidArgument

MAX_PAGE_SIZE = 1000  # as Google's list methods


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def sampling_problems(temperature, top_p, top_k, max_temperature: float) -> list[str]:
    """A tuned model's sampling defaults, or one request's sampling (None: not given):
    temperature from 0 to the base model's ``max_temperature``, top_p from 0 to 1, top_k a
    whole number, 0 or more (0: no top-k cut)."""
    problems = []
    if temperature is not None and (
        not is_number(temperature) or not 0 <= temperature <= max_temperature
    ):
        problems.append(
            f"temperature: {temperature!r} must be a number from 0 to {max_temperature:g}"
        )
    if top_p is not None and (not is_number(top_p) or not 0 <= top_p <= 1):
        problems.append(f"top_p: {top_p!r} must be a number from 0 to 1")
    if top_k is not None and (not is_int(top_k) or top_k < 0):
        problems.append(f"top_k: {top_k!r} must be a whole number, 0 or more")
    return problems


def page_size(value, default: int, maximum: int = MAX_PAGE_SIZE) -> int:
    """A list's page size: None or 0 is ``default``, more than ``maximum`` is ``maximum`` (as
    Google's list methods); anything else but a positive whole number is refused."""
    if value is None or value == 0:
        return default
    if not is_int(value) or value < 0:
        raise InvalidArgument(f"page_size: {value!r} must be a positive integer")
    return min(value, maximum)
