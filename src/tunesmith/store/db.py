"""Opening the database: engine, SQLite pragmas, migrations.

SQLite (the default, a file under ``TUNESMITH_HOME``) runs in WAL mode with a busy timeout so
that the SDK, the server and workers in other processes can share it. PostgreSQL is chosen
with ``TUNESMITH_DATABASE_URL=postgresql+psycopg://...``. The schema always comes from the
Alembic migrations in ``migrations/``, never from ``create_all``.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session

_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_MIGRATION_LOCK = 727_001  # advisory lock id: one migrator at a time


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


IDLE_IN_TX_MS = 10_000


def make_engine(url: str) -> Engine:
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            # Let SQLAlchemy's BEGIN reach SQLite (pysqlite would otherwise defer it), so
            # that write_session's BEGIN IMMEDIATE is honoured.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql(conn.info.pop("begin_sql", "BEGIN"))

        return engine
    # A process that stalls inside a transaction (SIGSTOP, a hung machine) would keep its row
    # locks, and FOR UPDATE SKIP LOCKED would skip its job forever: PostgreSQL ends such a
    # session after a few seconds, far longer than any transaction of ours stays idle.
    # Added to the URL's own libpq options (a search_path, say), never in place of them.
    parsed = make_url(url)
    options = f"{parsed.query.get('options', '')} -c idle_in_transaction_session_timeout="
    options = (options + str(IDLE_IN_TX_MS)).strip()
    return create_engine(
        parsed.update_query_dict({"options": options}),
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
    )


@contextlib.contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session for a transaction that writes, committed at the end.

    On SQLite it starts with ``BEGIN IMMEDIATE``: a deferred transaction that reads and then
    writes fails at once with "database is locked" when another process wrote in between
    (the busy timeout does not apply to that upgrade), which two workers sharing one SQLite
    file hit all the time. Taking the write lock first makes it wait its turn instead.
    """
    with engine.connect() as conn:
        if engine.url.get_backend_name() == "sqlite":
            conn.info["begin_sql"] = "BEGIN IMMEDIATE"
        with Session(bind=conn, expire_on_commit=False) as s, s.begin():
            yield s


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration; safe when several processes start at once."""
    from alembic import command  # here: importing alembic costs every CLI command 0.2 s
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with _migration_lock(engine), engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


@contextlib.contextmanager
def _migration_lock(engine: Engine):
    url = engine.url
    if url.get_backend_name() == "sqlite":
        db = url.database
        if not db or db == ":memory:":
            yield
            return
        with open(f"{db}.migrate.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()
