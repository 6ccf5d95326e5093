"""A tuned model's permissions: one stored (:class:`Grant`) and one asked for (:class:`NewPermission`)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Grant:
    """A stored permission: ``tunedModels/{model_id}/permissions/{id}``."""

    model_id: str
    id: str
    grantee_type: str
    email_address: str | None
    role: str

    @property
    def name(self) -> str:
        return f"tunedModels/{self.model_id}/permissions/{self.id}"


@dataclasses.dataclass
class NewPermission:
    """A permission to create, as the caller sent it (the service checks every field)."""

    grantee_type: str | None
    email_address: str | None
    role: str | None


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who asks: an API key's user and groups (the service takes None for the open caller:
    embedded, or a server without keys)."""

    user: str
    groups: frozenset[str] = frozenset()
