"""``tunesmith worker``: run queued tuning jobs in the foreground until interrupted."""

from __future__ import annotations

import logging
import signal

import typer


def worker() -> None:
    """Claim and run tuning jobs from this TUNESMITH_HOME / TUNESMITH_DATABASE_URL."""
    from ..jobs.worker import Worker
    from ..settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    w = Worker(get_settings())
    signal.signal(signal.SIGTERM, lambda *_: w.stop())
    typer.echo(f"tunesmith worker {w.worker_id}: waiting for jobs (Ctrl-C to stop)", err=True)
    try:
        w.run()
    except KeyboardInterrupt:
        w.stop()


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
