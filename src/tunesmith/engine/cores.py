"""The machine's cores, which a tuning run and the server answering beside it share.

A tuning run keeps every core busy (torch's threads, one per core). llama.cpp decodes a token
on as many threads, which meet at a barrier after every layer's kernels: beside a run, each
barrier waits for a thread the scheduler gave the run's core to, and decoding collapses (to
a twentieth of its speed alone or less, ``benchmarks/serving_beside_tuning.py``). On one
thread it has no barrier to wait at.

So every run of the engine, in whatever process (a server's worker, the home's background
worker, ``tunesmith worker``, a test), holds a shared lock on one file per machine and user
while it trains (:func:`training`), and code that shares the cores asks whether anyone holds
it (:func:`training_now`). A lock, not a file of process ids: the system lets go of it when
its process ends, however that happens.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def usable() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def training_lock() -> Path:
    """The file every tuning run on this machine (of this user) holds a shared lock on."""
    return Path(tempfile.gettempdir()) / f"tunesmith-{os.getuid()}-training.lock"


@contextlib.contextmanager
def training() -> Iterator[None]:
    """Hold the training lock (shared: runs in other processes hold it too) until exit;
    without it where the file cannot be opened (a run never fails for want of it)."""
    with contextlib.ExitStack() as stack:
        try:
            fh = stack.enter_context(open(training_lock(), "a"))
            fcntl.flock(fh, fcntl.LOCK_SH)
        except OSError:
            pass
        yield


def training_now() -> bool:
    """Whether a tuning run on this machine holds the training lock now (this process's own
    included). About 10 µs."""
    try:
        return held(training_lock())
    except OSError:  # another user's file of that name, say: as if no run trains
        return False


def held(path: Path) -> bool:
    """Whether a process holds a lock on ``path`` now (by the time you act, it may not)."""
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
