"""Persistence: SQLAlchemy 2 over SQLite (default) or PostgreSQL, schema by Alembic."""

from .queue import ClaimedJob, JobQueue, JobStatus, utcnow
from .repository import NewTuning, Store, StoredWeights

__all__ = ["ClaimedJob", "JobQueue", "JobStatus", "NewTuning", "Store", "StoredWeights", "utcnow"]
