"""``tunedModels/{id}/permissions`` and ``:transferOwnership``, as Google's API has them.

Only the model's OWNER may list, read, create, change or delete its permissions, or transfer
it. The owner appears in the list as ``tunedModels/{id}/permissions/owner`` (role OWNER); it
cannot be patched or deleted: ``transferOwnership`` is the one way to change it, and the
previous owner then keeps WRITER, as on Google's service.
"""

from __future__ import annotations

from ..errors import InvalidArgument, NotFound
from ..records.permissions import Grant, NewPermission
from ..store import Store
from ..store.keys import KeyStore, check_user
from ..store.permissions import EVERYONE, GROUP, USER
from . import checks
from .access import Access, Caller, Role
from .tuning import parse_model_name

GRANTEE_TYPES = (USER, GROUP, EVERYONE)
GRANTABLE = ("READER", "WRITER")
OWNER_PERMISSION = "owner"
MAX_PERMISSIONS = 100
DEFAULT_PAGE_SIZE = 10  # as Google


def parse_permission_name(name: str) -> tuple[str, str]:
    parts = name.split("/") if isinstance(name, str) else []
    if len(parts) != 4 or parts[0] != "tunedModels" or parts[2] != "permissions":
        raise NotFound(f"permission {name} not found")
    return parse_model_name(parts[1]), parts[3]


class PermissionService:
    def __init__(self, store: Store, access: Access):
        self.store = store
        self.access = access
        self.grants = access.permissions
        self.keys = KeyStore(store)

    def create_permission(
        self, parent: str, new: NewPermission, caller: Caller | str | None = None
    ) -> Grant:
        model_id = parse_model_name(parent)
        self.access.require(caller, model_id, Role.OWNER)
        problems: list[str] = []
        kind = new.grantee_type
        if kind not in GRANTEE_TYPES:
            problems.append(f"granteeType: {kind!r} must be one of {', '.join(GRANTEE_TYPES)}")
        email = new.email_address
        if kind in (USER, GROUP):
            if not email:
                problems.append(f"emailAddress: required for granteeType {kind}")
            else:
                try:
                    check_user("emailAddress", email)
                except InvalidArgument as e:
                    problems.append(e.message)
                else:
                    if kind == USER and not self.keys.user_exists(email):
                        problems.append(f"emailAddress: no API key belongs to user {email!r}")
        elif kind == EVERYONE and email:
            problems.append("emailAddress: must not be set for granteeType EVERYONE")
        problems += _role_problems(new.role)
        if problems:
            raise InvalidArgument("; ".join(problems))
        assert kind is not None and new.role is not None  # both checked above
        model_owner, _ = self.grants.access(model_id)
        if kind == USER and email == model_owner:
            raise InvalidArgument(f"emailAddress: {email} already owns tunedModels/{model_id}")
        return self.grants.create(
            model_id, kind, email if kind != EVERYONE else None, new.role, MAX_PERMISSIONS
        )

    def list_permissions(
        self,
        parent: str,
        page_size: int | None = None,
        page_token: str | None = None,
        caller: Caller | str | None = None,
    ) -> tuple[list[Grant], str | None]:
        model_id = parse_model_name(parent)
        self.access.require(caller, model_id, Role.OWNER)
        size = checks.page_size(page_size, DEFAULT_PAGE_SIZE)
        start = _offset(page_token)
        everything = self._with_owner(model_id)
        page = everything[start : start + size]
        more = start + size < len(everything)
        return page, (str(start + size) if more else None)

    def get_permission(self, name: str, caller: Caller | str | None = None) -> Grant:
        model_id, permission_id = parse_permission_name(name)
        self.access.require(caller, model_id, Role.OWNER)
        for grant in self._with_owner(model_id):
            if grant.id == permission_id:
                return grant
        raise NotFound(f"{name} not found")

    def update_permission(
        self,
        name: str,
        role: str | None,
        update_mask: list[str] | None,
        caller: Caller | str | None = None,
    ) -> Grant:
        model_id, permission_id = parse_permission_name(name)
        self.access.require(caller, model_id, Role.OWNER)
        fields = [f.strip() for f in (update_mask or []) if f.strip()]
        if fields != ["role"]:
            raise InvalidArgument(
                f"update_mask: {','.join(fields) or '(none)'}: only 'role' can be updated "
                "(send updateMask=role)"
            )
        if permission_id == OWNER_PERMISSION:
            raise InvalidArgument(f"{name}: the owner changes only with :transferOwnership")
        problems = _role_problems(role)
        if problems or role is None:
            raise InvalidArgument("; ".join(problems) or "role: required")
        return self.grants.update_role(model_id, permission_id, role)

    def delete_permission(self, name: str, caller: Caller | str | None = None) -> None:
        model_id, permission_id = parse_permission_name(name)
        self.access.require(caller, model_id, Role.OWNER)
        if permission_id == OWNER_PERMISSION:
            raise InvalidArgument(f"{name}: the owner changes only with :transferOwnership")
        self.grants.delete(model_id, permission_id)

    def transfer_ownership(
        self, name: str, email_address: str, caller: Caller | str | None = None
    ) -> None:
        model_id = parse_model_name(name)
        self.access.require(caller, model_id, Role.OWNER)
        if not email_address:
            raise InvalidArgument("emailAddress: required (the user to transfer the model to)")
        check_user("emailAddress", email_address)
        if not self.keys.user_exists(email_address):
            raise InvalidArgument(f"emailAddress: no API key belongs to user {email_address!r}")
        self.grants.transfer(model_id, email_address)

    def _with_owner(self, model_id: str) -> list[Grant]:
        model_owner, grants = self.grants.access(model_id)
        if model_owner is None:
            return grants
        return [Grant(model_id, OWNER_PERMISSION, USER, model_owner, "OWNER"), *grants]


def _role_problems(role) -> list[str]:
    if role == "OWNER":
        return ["role: OWNER cannot be granted; use :transferOwnership to change the owner"]
    if role not in GRANTABLE:
        return [f"role: {role!r} must be READER or WRITER"]
    return []


def _offset(token: str | None) -> int:
    if not token:
        return 0
    if not token.isdigit() or len(token) > 9:
        raise InvalidArgument(f"page_token: '{token}' is not a token this server gave")
    return int(token)
