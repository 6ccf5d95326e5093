"""Uploaded files' records (OpenAI's ``/files``): owner, name, purpose, size.

The bytes are the file service's (:mod:`tunesmith.service.files`); this module only keeps the
rows. An owner of None is a file uploaded to a server without keys (everyone's).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import DateTime, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from ..errors import NotFound, ResourceExhausted
from .db import write_session
from .repository import Store
from .tables import Base


class FileRow(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(256))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


@dataclasses.dataclass(frozen=True)
class StoredFile:
    id: str
    owner: str | None
    filename: str
    purpose: str
    bytes: int
    created_at: dt.datetime


def _record(row: FileRow) -> StoredFile:
    return StoredFile(row.id, row.owner, row.filename, row.purpose, row.bytes, row.created_at)


class FileStore:
    def __init__(self, store: Store):
        self.store = store

    def add(self, record: StoredFile, max_per_owner: int = 0) -> StoredFile:
        """Store a file's row; ResourceExhausted when its owner already keeps
        ``max_per_owner`` files (0: no limit), counted in the same transaction."""
        with write_session(self.store.engine) as s:
            if max_per_owner and record.owner is not None:
                kept = s.scalar(
                    select(func.count()).select_from(FileRow).where(FileRow.owner == record.owner)
                )
                if (kept or 0) >= max_per_owner:
                    raise ResourceExhausted(
                        f"file: {record.owner} already keeps {kept} files, the limit; "
                        "delete some first"
                    )
            s.add(FileRow(**dataclasses.asdict(record)))
        return record

    def get(self, file_id: str, owner: str | None, everyone: bool) -> StoredFile:
        """The file, if ``owner`` may see it (``everyone``: the server runs open); another
        user's file is NotFound, as one that does not exist."""
        with self.store._sessions() as s:
            row = s.get(FileRow, file_id)
            if row is None or not (everyone or row.owner == owner):
                raise NotFound(f"file {file_id!r} not found")
            return _record(row)

    def list(self, owner: str | None, everyone: bool, purpose: str | None) -> list[StoredFile]:
        """Newest first (OpenAI's order)."""
        q = select(FileRow).order_by(FileRow.created_at.desc(), FileRow.id.desc())
        if not everyone:
            q = q.where(FileRow.owner == owner)
        if purpose is not None:
            q = q.where(FileRow.purpose == purpose)
        with self.store._sessions() as s:
            return [_record(r) for r in s.scalars(q)]

    def delete(self, file_id: str) -> None:
        with write_session(self.store.engine) as s:
            row = s.get(FileRow, file_id)
            if row is not None:
                s.delete(row)
