"""Permission JSON as Google's ``tunedModels.permissions`` resource has it.

``{"name": "tunedModels/m/permissions/p", "granteeType": "USER", "emailAddress": "...",
"role": "READER"}``; in, enum names or their numbers (GranteeType USER=1, GROUP=2,
EVERYONE=3; Role OWNER=1, WRITER=2, READER=3) and camelCase or snake_case keys.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..records.permissions import Grant, NewPermission
from ._base import json_object, snake_keys

GRANTEE_TYPES = {0: "GRANTEE_TYPE_UNSPECIFIED", 1: "USER", 2: "GROUP", 3: "EVERYONE"}
ROLES = {0: "ROLE_UNSPECIFIED", 1: "OWNER", 2: "WRITER", 3: "READER"}


def enum_name(value: Any, names: dict[int, str]) -> Any:
    """An enum by name or number; anything else is passed on for the service to refuse."""
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get(value, value)
    if isinstance(value, str):
        return (
            names.get(int(value), value) if value.isascii() and value.isdigit() else value.upper()
        )
    return value


class Shared(Protocol):
    """What a permission's JSON shows: a stored :class:`Grant`, or the SDK's ``Permission``."""

    @property
    def name(self) -> str: ...
    @property
    def grantee_type(self) -> str | None: ...
    @property
    def email_address(self) -> str | None: ...
    @property
    def role(self) -> str: ...


def permission_to_json(g: Shared) -> dict:
    out = {"name": g.name, "granteeType": g.grantee_type}
    if g.email_address:
        out["emailAddress"] = g.email_address
    out["role"] = g.role
    return out


def permission_from_json(payload: Any) -> NewPermission:
    p = snake_keys(json_object(payload, "permission"))
    return NewPermission(
        grantee_type=enum_name(p.get("grantee_type"), GRANTEE_TYPES),
        email_address=p.get("email_address"),
        role=enum_name(p.get("role"), ROLES),
    )


def role_from_json(payload: Any) -> Any:
    return enum_name(snake_keys(json_object(payload, "permission")).get("role"), ROLES)


def transfer_email_from_json(payload: Any) -> Any:
    return snake_keys(json_object(payload, "request")).get("email_address")


# -- the remote client's side: requests out, records back ----------------------------------


def new_permission_to_json(new: NewPermission) -> dict:
    out = {"granteeType": new.grantee_type, "emailAddress": new.email_address, "role": new.role}
    return {k: v for k, v in out.items() if v is not None}


def grant_from_json(d: dict) -> Grant:
    """A permission the server answered with (``name`` is ``tunedModels/M/permissions/P``)."""
    parts = str(d.get("name", "")).split("/")
    model_id, permission_id = (parts[1], parts[3]) if len(parts) == 4 else ("", d.get("name", ""))
    return Grant(
        model_id=model_id,
        id=permission_id,
        grantee_type=enum_name(d.get("granteeType"), GRANTEE_TYPES),
        email_address=d.get("emailAddress") or None,
        role=enum_name(d.get("role"), ROLES),
    )
