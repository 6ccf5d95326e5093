"""API keys: created once (shown once), stored hashed, listed, revoked.

A key's ``id`` is the owner recorded on every tuned model it creates. Keys are long random
strings, so a plain SHA-256 is enough to store them (no password stretching needed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets

from sqlalchemy import DateTime, String, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from ..errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from .repository import Store, utcnow
from .tables import Base

KEY_PREFIX = "ts-"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


@dataclasses.dataclass
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _record(row: ApiKeyRow) -> ApiKey:
    return ApiKey(row.id, row.name, row.prefix, row.created_at, row.revoked_at)


class KeyStore:
    def __init__(self, store: Store):
        self._sessions = sessionmaker(store.engine, expire_on_commit=False)

    def create(self, name: str) -> tuple[ApiKey, str]:
        """A new key; returns its record and the secret, which is not stored."""
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise InvalidArgument(
                f"name: {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id="key-" + secrets.token_hex(8),
            name=name,
            key_hash=_hash(secret),
            prefix=secret[:10],
            created_at=utcnow(),
        )
        try:
            with self._sessions.begin() as s:
                s.add(row)
        except IntegrityError:
            raise AlreadyExists(f"a key named {name!r} already exists") from None
        return _record(row), secret

    def list(self) -> list[ApiKey]:
        with self._sessions() as s:
            rows = s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at)).all()
            return [_record(r) for r in rows]

    def revoke(self, name_or_id: str) -> ApiKey:
        with self._sessions.begin() as s:
            row = s.scalars(
                select(ApiKeyRow).where(
                    or_(ApiKeyRow.name == name_or_id, ApiKeyRow.id == name_or_id)
                )
            ).first()
            if row is None:
                raise NotFound(f"no key named {name_or_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return _record(row)

    def any_active(self) -> bool:
        with self._sessions() as s:
            n = s.scalar(
                select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))
            )
            return bool(n)

    def authenticate(self, secret: str | None) -> str | None:
        """The owner for a request: the key's id; None when the server runs open (no keys)."""
        with self._sessions() as s:
            if secret:
                row = s.scalars(
                    select(ApiKeyRow).where(ApiKeyRow.key_hash == _hash(secret))
                ).first()
                if row is not None and row.revoked_at is None:
                    return row.id
            active = s.scalar(
                select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))
            )
        if not active:
            return None
        if not secret:
            raise Unauthenticated(
                "This server needs an API key: send it as the x-goog-api-key header, "
                "?key=, or Authorization: Bearer"
            )
        raise Unauthenticated("API key not valid. Please pass a valid API key.")
