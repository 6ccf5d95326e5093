"""OpenAI's lists: ``{"object": "list", "data": [...], "has_more", "first_id", "last_id"}``.

A list route takes ``after`` (the id of the last item the caller has) and ``limit``; the
``openai`` client's auto-pagination resends ``after=<last id>`` until ``has_more`` is false.
:func:`list_params` parses both (a bad ``limit`` is a 400 naming it); :func:`page` cuts one
page out of items in list order; :func:`list_json` writes the envelope.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

from fastapi import Depends, Query

from ...errors import InvalidArgument

T = TypeVar("T")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class ListParams:
    def __init__(self, after: str | None, limit: int):
        self.after, self.limit = after, limit


def list_params(
    after: Annotated[str | None, Query(description="The id of the last item already seen")] = None,
    limit: Annotated[
        str | None, Query(description=f"Items per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})")
    ] = None,
) -> ListParams:
    if limit is None or limit == "":
        return ListParams(after or None, DEFAULT_LIMIT)
    try:
        n = int(limit)
    except ValueError:
        raise InvalidArgument(f"limit: {limit!r} is not a whole number") from None
    if not 1 <= n <= MAX_LIMIT:
        raise InvalidArgument(f"limit: {n} must be from 1 to {MAX_LIMIT}")
    return ListParams(after or None, n)


Listing = Annotated[ListParams, Depends(list_params)]


def page(items: Sequence[T], params: ListParams, id_of: Callable[[T], str]) -> tuple[list[T], bool]:
    """The items after ``params.after`` (all when None), at most ``params.limit``, and whether
    more follow. An ``after`` that names no item is a 400 naming it."""
    start = 0
    if params.after is not None:
        ids = [id_of(item) for item in items]
        if params.after not in ids:
            raise InvalidArgument(f"after: no item with id {params.after!r} in this list")
        start = ids.index(params.after) + 1
    chosen = list(items[start : start + params.limit])
    return chosen, start + params.limit < len(items)


def list_json(data: list[dict], has_more: bool = False) -> dict:
    """The list envelope around items already written as JSON (each with an ``id``)."""
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
