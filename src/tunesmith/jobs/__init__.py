"""Turning queued tuning operations into runs: workers, leases, the embedded worker."""

from __future__ import annotations

import sys

# A worker process imports torch, its compiler and the store: 300,000 objects and more, which
# Python's collector walked about six times on the way (0.5 of the 2 s a worker took to start
# on the Zen 5 EPYC). So it imports with the collector off; ``main`` freezes what was imported
# and turns the collector on (:func:`tunesmith.engine.models.settle_between_jobs`).
_WORKER_MAIN = "import gc; gc.disable(); from tunesmith.jobs.worker import main; main()"


def worker_command(*args: str) -> list[str]:
    """The command that starts a worker process (``tunesmith.jobs.worker``'s ``main`` with
    ``args``), for every process that starts one: the embedded SDK, the server, the pool."""
    return [sys.executable, "-c", _WORKER_MAIN, *args]
