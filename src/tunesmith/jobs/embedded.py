"""The embedded background worker: one per ``TUNESMITH_HOME``, started on demand.

With no server configured, ``create_tuned_model`` stores the job and calls
:func:`ensure_worker`, which starts ``python -m tunesmith.jobs.worker --embedded`` as a
detached process unless one already holds the home's ``worker.lock``. The worker outlives the
script that started it and leaves after ``TUNESMITH_WORKER_IDLE_SECONDS`` without work, so a
user can start a run, exit, and find the result later.

It holds its lock file for its whole life, and exactly one starts however many callers ask at
once: the *caller* takes the lock and hands it to the process it starts (:func:`spawn`), so
taking the lock is the decision to start, however slowly the process then gets going.

No job is stranded between "the worker decides to leave" and "a new job is queued": the
worker lets go of the lock *before* its last look at the queue, and a creator tries the lock
*after* its job is committed, so one of the two always sees the other.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from pathlib import Path

from ..settings import Settings


def _lock_path(settings: Settings) -> Path:
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
def hold_lock(path: Path, fd: int | None = None):
    """Yields a :class:`HeldLock` on ``path``, or None when another process holds it.

    ``fd`` is the lock :func:`spawn` handed over (already held); without it (a process
    started by hand) the lock is taken here.
    """
    if fd is not None:
        fh = os.fdopen(fd, "a+")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")  # noqa: SIM115 (closed below, after the with block's yield)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            yield None
            return
    with fh:
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))  # who holds it, for people and tests
        fh.flush()
        yield HeldLock(fh)


def held(path: Path) -> bool:
    """Whether a process holds the lock at ``path`` now (by the time you act, it may not)."""
    try:
        fh = open(path)  # noqa: SIM115
    except FileNotFoundError:
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def spawn(lock: Path, module_args: list[str], log: Path, env: dict[str, str]) -> bool:
    """Start ``python -m MODULE ARGS --lock-fd N`` detached, unless a process holds ``lock``.

    The lock is taken here and the new process inherits it as file descriptor N; closing
    this process's copy leaves it held by the new one until that one exits. Returns True if
    it started a process.
    """
    lock.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fd = fh.fileno()
        with open(log, "ab") as out:
            subprocess.Popen(
                [sys.executable, "-m", *module_args, "--lock-fd", str(fd)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # outlives the script that started it
                close_fds=True,
                pass_fds=(fd,),
            )
    return True


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["TUNESMITH_HOME"] = str(settings.home)
    env["TUNESMITH_DATABASE_URL"] = settings.database_url
    env.pop("TUNESMITH_API_ENDPOINT", None)
    return env


def ensure_worker(settings: Settings) -> bool:
    """Start the home's background worker unless one runs. Returns True if it started one."""
    args = ["tunesmith.jobs.worker", "--embedded", "--idle-exit", str(settings.worker_idle_seconds)]
    return spawn(_lock_path(settings), args, settings.logs_dir / "worker.log", _env(settings))


def worker_lock(settings: Settings, fd: int | None = None):
    """The embedded worker's lock (see :func:`hold_lock`)."""
    return hold_lock(_lock_path(settings), fd)
