"""Request bodies: JSON as Google's server took it, trailing commas included.

The REST quickstart's curl bodies (``../shared/seeds/002_*``) end objects and lists with a
comma, which Google's (proto-JSON) parser accepted; :func:`loads` does too. An empty body is
``{}`` (google-api-core sends ``:cancel`` with none).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from ..errors import InvalidArgument


def strip_trailing_commas(text: str) -> str:
    """Drop each comma that only whitespace separates from a closing ``}`` or ``]``."""
    out: list[str] = []
    in_string = escaped = False
    pending: int | None = None  # index in ``out`` of a comma that may be trailing
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch in "}]" and pending is not None:
            out[pending] = ""
        if not ch.isspace():
            pending = None
        if ch == '"':
            in_string = True
        elif ch == ",":
            pending = len(out)
        out.append(ch)
    return "".join(out)


def loads(raw: bytes | str) -> Any:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    if not text.strip():
        return {}
    try:
        return json.loads(strip_trailing_commas(text))
    except json.JSONDecodeError as e:
        raise InvalidArgument(
            f"Invalid JSON payload received: {e.msg} at line {e.lineno}, column {e.colno}"
        ) from None


async def json_body(request: Request) -> Any:
    return loads(await request.body())
