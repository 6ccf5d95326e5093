"""API keys: created once (shown once), stored hashed, listed, revoked.

A key belongs to a *user* (its name unless given): the owner recorded on every tuned model
it creates, and the ``emailAddress`` others share models with. A key may also list the groups
its user is in (``GROUP`` permissions). Keys are long random strings, so a plain SHA-256 is
enough to store them (no password stretching needed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets

from sqlalchemy import DateTime, String, Text, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from ..errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from .db import write_session
from .repository import Store, utcnow
from .tables import Base

KEY_PREFIX = "ts-"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# A user or group: a name or an email address.
USER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    user: Mapped[str | None] = mapped_column(String(64))
    groups: Mapped[str | None] = mapped_column(Text)  # comma-separated


@dataclasses.dataclass
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None
    user: str = ""
    groups: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _record(row: ApiKeyRow) -> ApiKey:
    groups = tuple(g for g in (row.groups or "").split(",") if g)
    return ApiKey(
        row.id, row.name, row.prefix, row.created_at, row.revoked_at, row.user or row.name, groups
    )


def check_user(field: str, value) -> str:
    """A user or group name as keys and permissions take it, or InvalidArgument."""
    if not isinstance(value, str) or not USER_PATTERN.match(value):
        raise InvalidArgument(
            f"{field}: {value!r} must be a user or group: 1-64 letters, digits, '.', '_', "
            "'-', '+' or '@', starting with a letter or digit"
        )
    return value


class KeyStore:
    def __init__(self, store: Store):
        self._sessions = sessionmaker(store.engine, expire_on_commit=False)
        self._store_engine = store.engine

    def create(
        self, name: str, user: str | None = None, groups: tuple[str, ...] = ()
    ) -> tuple[ApiKey, str]:
        """A new key; returns its record and the secret, which is not stored."""
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise InvalidArgument(
                f"name: {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        user = check_user("user", user or name)
        groups = tuple(check_user("group", g) for g in groups)
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id="key-" + secrets.token_hex(8),
            name=name,
            key_hash=_hash(secret),
            prefix=secret[:10],
            created_at=utcnow(),
            user=user,
            groups=",".join(groups) or None,
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
        # Reads then writes: take SQLite's write lock first (see db.write_session).
        with write_session(self._store_engine) as s:
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

    def user_exists(self, user: str) -> bool:
        """Whether an active key belongs to ``user`` (a name to share models with)."""
        with self._sessions() as s:
            q = select(ApiKeyRow.name, ApiKeyRow.user).where(ApiKeyRow.revoked_at.is_(None))
            return any((u or n) == user for n, u in s.execute(q).all())

    def authenticate(self, secret: str | None) -> ApiKey | None:
        """The caller's key; None when the server runs open (no keys)."""
        with self._sessions() as s:
            if secret:
                row = s.scalars(
                    select(ApiKeyRow).where(ApiKeyRow.key_hash == _hash(secret))
                ).first()
                if row is not None and row.revoked_at is None:
                    return _record(row)
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
