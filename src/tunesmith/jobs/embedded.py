"""The embedded background worker: one per ``TUNESMITH_HOME``, started on demand.

With no server configured, ``create_tuned_model`` stores the job and calls
:func:`ensure_worker`, which starts ``python -m tunesmith.jobs.worker --embedded`` as a
detached process unless one already holds the home's ``worker.lock``. The worker outlives the
script that started it and leaves after ``TUNESMITH_WORKER_IDLE_SECONDS`` without work, so a
user can start a run, exit, and find the result later.

No job is stranded between "the worker decides to leave" and "a new job is queued": the
worker lets go of the lock *before* its last look at the queue, and a creator looks at the
lock *after* its job is committed, so one of the two always sees the other.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys

from ..settings import Settings


def _lock_path(settings: Settings):
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings.home / "worker.lock"


class HeldLock:
    def __init__(self, fh):
        self.fh = fh

    def release_if_idle(self, store):
        """A ``should_exit`` for :meth:`Worker.run`: True once it is safe to leave."""

        def should_exit() -> bool:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            if store.jobs.claimable() == 0:
                return True
            try:
                fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True  # a newer worker took over
            return False

        return should_exit


@contextlib.contextmanager
def worker_lock(settings: Settings):
    """Yields a :class:`HeldLock`, or None when another embedded worker holds the home."""
    with open(_lock_path(settings), "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield HeldLock(fh)


def worker_running(settings: Settings) -> bool:
    with open(_lock_path(settings), "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def ensure_worker(settings: Settings) -> bool:
    """Start the home's background worker unless one runs. Returns True if it started one."""
    if worker_running(settings):
        return False
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["TUNESMITH_HOME"] = str(settings.home)
    env["TUNESMITH_DATABASE_URL"] = settings.database_url
    env.pop("TUNESMITH_API_ENDPOINT", None)
    with open(settings.logs_dir / "worker.log", "ab") as log:
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tunesmith.jobs.worker",
                "--embedded",
                "--idle-exit",
                str(settings.worker_idle_seconds),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # outlives the script that started it
            close_fds=True,
        )
    return True
