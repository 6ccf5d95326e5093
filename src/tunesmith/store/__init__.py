"""Persistence: SQLAlchemy 2 over SQLite (default) or PostgreSQL, schema by Alembic."""

from .repository import ClaimedJob, JobStatus, NewTuning, Store, utcnow

__all__ = ["ClaimedJob", "JobStatus", "NewTuning", "Store", "utcnow"]
