"""Who may use a tuned model besides its owner: the permissions table.

The store keeps grants consistent (one grant per grantee and model, ownership transfers in
one transaction); which role allows what is the service's rule
(:mod:`tunesmith.service.access`).
"""

from __future__ import annotations

import dataclasses
import secrets
import string
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String, and_, delete, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from ..errors import AlreadyExists, NotFound, ResourceExhausted
from ..records.permissions import Grant
from .db import write_session
from .queue import utcnow
from .tables import Base, TunedModelRow

if TYPE_CHECKING:
    from .repository import Store

USER, GROUP, EVERYONE = "USER", "GROUP", "EVERYONE"
_ALPHABET = string.ascii_lowercase + string.digits


class PermissionRow(Base):
    __tablename__ = "permissions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tuned_model_id: Mapped[str] = mapped_column(
        ForeignKey("tuned_models.id", ondelete="CASCADE"), index=True
    )
    grantee_type: Mapped[str] = mapped_column(String(16))
    # '' for EVERYONE, so the unique index also keeps one EVERYONE grant per model.
    email_address: Mapped[str] = mapped_column(String(320), default="")
    role: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        Index(
            "ux_permissions_grantee", "tuned_model_id", "grantee_type", "email_address", unique=True
        ),
    )


@dataclasses.dataclass(frozen=True)
class Visibility:
    """Which models a caller may see: the SQL twin of :func:`service.access.role_of`."""

    user: str
    groups: frozenset[str] = frozenset()
    owned_only: bool = False  # filter owner:me
    everyone_only: bool = False  # filter readers:everyone


def _grant(row: PermissionRow) -> Grant:
    email = row.email_address or None
    return Grant(row.tuned_model_id, row.id, row.grantee_type, email, row.role)


def visible_clause(v: Visibility):
    """A WHERE clause over ``TunedModelRow`` for the models ``v`` may read."""
    everyone = exists().where(
        PermissionRow.tuned_model_id == TunedModelRow.id, PermissionRow.grantee_type == EVERYONE
    )
    if v.everyone_only:
        return everyone
    if v.owned_only:
        return TunedModelRow.owner == v.user
    matches = [and_(PermissionRow.grantee_type == USER, PermissionRow.email_address == v.user)]
    if v.groups:
        matches.append(
            and_(PermissionRow.grantee_type == GROUP, PermissionRow.email_address.in_(v.groups))
        )
    matches.append(PermissionRow.grantee_type == EVERYONE)
    granted = exists().where(PermissionRow.tuned_model_id == TunedModelRow.id, or_(*matches))
    return or_(TunedModelRow.owner == v.user, TunedModelRow.owner.is_(None), granted)


class PermissionStore:
    def __init__(self, store: Store):
        self.engine = store.engine
        self._sessions = sessionmaker(store.engine, expire_on_commit=False)

    def access(self, model_id: str) -> tuple[str | None, list[Grant]]:
        """The model's owner and its grants; NotFound when there is no such model."""
        with self._sessions() as s:
            row = s.get(TunedModelRow, model_id)
            if row is None:
                raise NotFound(f"tunedModels/{model_id} not found")
            grants = s.scalars(
                select(PermissionRow)
                .where(PermissionRow.tuned_model_id == model_id)
                .order_by(PermissionRow.id)
            ).all()
            return row.owner, [_grant(g) for g in grants]

    def create(
        self, model_id: str, grantee_type: str, email: str | None, role: str, max_grants: int
    ) -> Grant:
        row = PermissionRow(
            id="".join(secrets.choice(_ALPHABET) for _ in range(12)),
            tuned_model_id=model_id,
            grantee_type=grantee_type,
            email_address=email or "",
            role=role,
        )
        try:
            with write_session(self.engine) as s:
                count = s.scalar(
                    select(func.count())
                    .select_from(PermissionRow)
                    .where(PermissionRow.tuned_model_id == model_id)
                )
                if (count or 0) >= max_grants:
                    raise ResourceExhausted(
                        f"tunedModels/{model_id}: at most {max_grants} permissions per model"
                    )
                s.add(row)
        except IntegrityError:
            who = f"{grantee_type} {email}" if email else grantee_type
            raise AlreadyExists(
                f"tunedModels/{model_id} already has a permission for {who}: patch it instead"
            ) from None
        return _grant(row)

    def update_role(self, model_id: str, permission_id: str, role: str) -> Grant:
        with write_session(self.engine) as s:
            row = self._row(s, model_id, permission_id)
            row.role = role
            return _grant(row)

    def delete(self, model_id: str, permission_id: str) -> None:
        with write_session(self.engine) as s:
            s.delete(self._row(s, model_id, permission_id))

    def transfer(self, model_id: str, new_owner: str) -> None:
        """Make ``new_owner`` the owner; the previous owner keeps a WRITER grant (as Google)."""
        with write_session(self.engine) as s:
            row = s.get(TunedModelRow, model_id)
            if row is None:
                raise NotFound(f"tunedModels/{model_id} not found")
            previous = row.owner
            s.execute(
                delete(PermissionRow).where(
                    PermissionRow.tuned_model_id == model_id,
                    PermissionRow.grantee_type == USER,
                    PermissionRow.email_address.in_([new_owner, previous or ""]),
                )
            )
            row.owner = new_owner
            row.update_time = utcnow()
            if previous is not None and previous != new_owner:
                s.add(
                    PermissionRow(
                        id="".join(secrets.choice(_ALPHABET) for _ in range(12)),
                        tuned_model_id=model_id,
                        grantee_type=USER,
                        email_address=previous,
                        role="WRITER",
                    )
                )

    @staticmethod
    def _row(s, model_id: str, permission_id: str) -> PermissionRow:
        row = s.get(PermissionRow, permission_id)
        if row is None or row.tuned_model_id != model_id:
            raise NotFound(f"tunedModels/{model_id}/permissions/{permission_id} not found")
        return row
