"""Sharing tuned models, shaped as google-generativeai's ``permission_types``.

    model = ts.get_tuned_model("tunedModels/numbers")
    p = model.permissions.create(role="reader", grantee_type="user", email_address="bob")
    [x.email_address for x in model.permissions.list()]   # the owner first, then the grants
    p = p.update({"role": "writer"})
    p.delete()
    model.permissions.transfer_ownership("bob")        # you keep WRITER, as on Google's service

Roles and grantee types are taken as Google's SDK takes them (``"reader"``, ``"READER"``,
``3``, an enum member) and come back as names (``"READER"``). The rules (who may share, which
roles, which grantees) are the service's, the same embedded or remote: a bad value raises
``InvalidArgument`` naming the field, a caller who is not the owner ``PermissionDenied``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidArgument
from ..records.permissions import Grant, NewPermission
from ..types import TunedModel, provide_permissions_view
from ..wire.permissions import GRANTEE_TYPES, ROLES, enum_name
from .clients import Client, RequestOptions, default_client


@dataclasses.dataclass
class Permission:
    """A grant on a tuned model: ``tunedModels/{model}/permissions/{id}``.

    The owner is listed as ``tunedModels/{model}/permissions/owner`` with role ``OWNER``.
    """

    name: str
    role: str
    grantee_type: str | None = None
    email_address: str | None = None
    client: Client | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def get(cls, name: str, *, client=None, request_options=None) -> Permission:
        c = _client(client)
        return _permission(c.get_permission(name, RequestOptions.of(request_options)), c)

    def update(self, updates: dict[str, Any], *, client=None, request_options=None) -> Permission:
        """Change the role: ``p.update({"role": "writer"})`` (role is the one field); returns
        this permission, updated."""
        if not isinstance(updates, dict):
            raise InvalidArgument("updates: expected a dict such as {'role': 'writer'}")
        c = _client(client or self.client)
        role = _enum_name(updates.get("role"), ROLES, "role")
        grant = c.update_permission(
            self.name, role, list(updates), RequestOptions.of(request_options)
        )
        self.role = grant.role
        return self

    def delete(self, *, client=None, request_options=None) -> None:
        _client(client or self.client).delete_permission(
            self.name, RequestOptions.of(request_options)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "grantee_type": self.grantee_type,
            "email_address": self.email_address,
        }


class Permissions:
    """The permissions of one tuned model (``TunedModel.permissions`` makes one)."""

    def __init__(self, parent: TunedModel | str, *, client: Client | None = None):
        self._parent = parent.name if isinstance(parent, TunedModel) else parent
        self._client = client

    @property
    def parent(self) -> str:
        return self._parent

    def create(
        self,
        role,
        grantee_type=None,
        email_address: str | None = None,
        *,
        client=None,
        request_options=None,
    ) -> Permission:
        """Share the model: with a user or group (``email_address``) or ``"everyone"``.

        Without ``grantee_type``, an ``email_address`` names a user (as Google's SDK).
        """
        kind = _enum_name(grantee_type, GRANTEE_TYPES, "grantee_type")
        if kind is None and email_address:
            kind = "USER"
        new = NewPermission(kind, email_address, _enum_name(role, ROLES, "role"))
        c = _client(client or self._client)
        return _permission(
            c.create_permission(self._parent, new, RequestOptions.of(request_options)), c
        )

    def list(
        self, page_size: int | None = None, *, client=None, request_options=None
    ) -> Iterator[Permission]:
        """Every permission of the model, the owner first, fetched a page at a time."""
        c, opts = _client(client or self._client), RequestOptions.of(request_options)
        token = None
        while True:
            grants, token = c.list_permissions(self._parent, page_size, token, opts)
            yield from (_permission(g, c) for g in grants)
            if not token:
                return

    def __iter__(self) -> Iterator[Permission]:
        return self.list()

    def get(self, name: str, *, client=None, request_options=None) -> Permission:
        """One permission by its name (``tunedModels/M/permissions/P``) or its id ``P``."""
        if "/" not in name:
            name = f"{self._parent}/permissions/{name}"
        return Permission.get(name, client=client or self._client, request_options=request_options)

    def transfer_ownership(self, email_address: str, *, client=None, request_options=None):
        """Make another user the owner; the previous owner keeps WRITER."""
        _client(client or self._client).transfer_ownership(
            self._parent, email_address, RequestOptions.of(request_options)
        )


def _client(client: Client | None) -> Client:
    return client if client is not None else default_client()


def _enum_name(value, names: dict[int, str], field: str):
    """Google's SDK's forms (a name in any case, a number, an enum member) to the name; the
    service judges the name, so embedded and remote calls refuse the same values."""
    if isinstance(value, enum.Enum):
        value = value.name
    if value is not None and not isinstance(value, (str, int)):
        raise InvalidArgument(f"{field}: expected a name or number, not {type(value).__name__}")
    return enum_name(value, names)


def _permission(grant: Grant, client: Client) -> Permission:
    return Permission(grant.name, grant.role, grant.grantee_type, grant.email_address, client)


provide_permissions_view(Permissions)  # TunedModel.permissions, as Google's SDK has it
