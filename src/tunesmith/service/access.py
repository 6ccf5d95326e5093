"""Who may do what to a tuned model: the one permission rule.

A caller is an API key's user (and the groups the key lists), or None when the service runs
open (embedded SDK, CLI on the machine, or a server without keys, which listens on loopback
only): an open caller may do everything. Otherwise a caller's role on a model is the highest
of:

* OWNER when the caller's user owns the model;
* each grant that names them: ``USER`` with their user, ``GROUP`` with one of their groups,
  ``EVERYONE``;
* READER when the model has no owner (it was created while the service ran open: every key
  may see and use it; only an open caller may change, delete, share or transfer it).

READER: get, list, generate, count tokens, read its operations, tune from it.
WRITER: also update it and cancel its operations.
OWNER: also delete, share (permissions) and transfer ownership.

A caller without even READER gets NOT_FOUND (a model's existence is private); a caller who may
read but lacks the role gets PERMISSION_DENIED.
"""

from __future__ import annotations

import enum

from ..errors import NotFound, PermissionDenied
from ..records.permissions import Caller, Grant
from ..store.permissions import EVERYONE, GROUP, USER, PermissionStore, Visibility


class Role(enum.IntEnum):
    """Ordered: a higher role can do everything a lower one can."""

    READER = 1
    WRITER = 2
    OWNER = 3


def as_caller(caller: Caller | str | None) -> Caller | None:
    """Service methods take a Caller, a bare user name, or None (open)."""
    if caller is None or isinstance(caller, Caller):
        return caller
    return Caller(user=caller)


def role_of(caller: Caller | None, owner: str | None, grants: list[Grant]) -> Role | None:
    if caller is None or owner == caller.user:
        return Role.OWNER
    best = Role.READER if owner is None else None
    for g in grants:
        if (
            (g.grantee_type == USER and g.email_address == caller.user)
            or (g.grantee_type == GROUP and g.email_address in caller.groups)
            or g.grantee_type == EVERYONE
        ):
            role = Role[g.role]
            best = role if best is None else max(best, role)
    return best


def visibility(caller: Caller | None, filter_word: str | None = None) -> Visibility | None:
    """What a listing shows (None: everything), with ``owner:me`` / ``readers:everyone``."""
    if caller is None:
        if filter_word == "readers:everyone":
            return Visibility(user="", everyone_only=True)
        return None  # an open caller owns everything, so owner:me changes nothing
    return Visibility(
        user=caller.user,
        groups=caller.groups,
        owned_only=filter_word == "owner:me",
        everyone_only=filter_word == "readers:everyone",
    )


_WHAT = {Role.READER: "read", Role.WRITER: "change", Role.OWNER: "delete, share or transfer"}


class Access:
    def __init__(self, permissions: PermissionStore):
        self.permissions = permissions

    def require(self, who: Caller | str | None, model_id: str, need: Role) -> Role:
        """The caller's role on the model, or NotFound / PermissionDenied."""
        caller = as_caller(who)
        if caller is None:
            self.permissions.access(model_id)  # still NotFound for a missing model
            return Role.OWNER
        model_owner, grants = self.permissions.access(model_id)
        role = role_of(caller, model_owner, grants)
        if role is None:
            raise NotFound(f"tunedModels/{model_id} not found")
        if role < need:
            raise PermissionDenied(
                f"tunedModels/{model_id}: {caller.user} is a {role.name} of this model; "
                f"only a{'n' if need is Role.OWNER else ''} {need.name} may {_WHAT[need]} it"
            )
        return role
