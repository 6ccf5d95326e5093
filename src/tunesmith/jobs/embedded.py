"""The embedded background processes: started on demand, one of each per ``TUNESMITH_HOME``.

- The **worker** (:mod:`tunesmith.jobs.worker` with ``--embedded``) runs tuning jobs. With no
  server configured, ``create_tuned_model`` stores the job and calls :func:`ensure_worker`,
  which starts one or wakes the one that runs (:func:`job_wakes`).
- The **generation server** (``python -m tunesmith.api.local``) keeps base models loaded and
  answers the embedded client's generation calls (:mod:`tunesmith.sdk.warm`);
  :func:`ensure_generation_server` starts it. There is one per home and configuration: a
  caller whose settings differ (another default base model, database, tunesmith version or
  Python environment) gets a server of its own rather than answers made under other settings.

Both outlive the script that started them and leave after ``TUNESMITH_WORKER_IDLE_SECONDS``
without work, so a user can start a run, exit, and find the result later, and the next
``tunesmith generate`` finds the model loaded.

Each process holds its lock file for its whole life, and exactly one starts however many
callers ask at once: the *caller* takes the lock and hands it to the process it starts
(:func:`spawn`), so taking the lock is the decision to start, however slowly the process
then gets going.

No job is stranded between "the worker decides to leave" and "a new job is queued": the
worker lets go of the lock *before* its last look at the queue, and a creator tries the lock
*after* its job is committed, so one of the two always sees the other.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import TypeVar

from ..settings import Settings
from . import worker_command

SETTINGS_ENV = "TUNESMITH_EMBEDDED_SETTINGS"  # how a generation server gets its caller's settings
MAX_SOCKET_PATH = 100  # bytes; the system's limit for a socket's path is 104-108


def _lock_path(settings: Settings) -> Path:
    return settings.worker_lock


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


def spawn(lock: Path, command: list[str], log: Path, env: dict[str, str]) -> bool:
    """Start ``COMMAND --lock-fd N`` detached, unless a process holds ``lock``.

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
                [*command, "--lock-fd", str(fd)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # outlives the script that started it
                close_fds=True,
                pass_fds=(fd,),
            )
    return True


# How long (busy-wait iterations) an OpenMP thread of a process tunesmith starts spins for
# the next parallel region before it sleeps. A decoding step runs hundreds of small parallel
# products: threads that sleep at once (OMP_WAIT_POLICY=PASSIVE) pay a wake-up each time, and
# greedy decoding ran 1.4-2x slower than with this bounded spin on a quiet 2-core AMD EPYC
# (avx512_bf16). libgomp's own default spins 30 times longer: beside six busy processes a
# spinning thread burns the time slice its partner needs, and decoding fell to 0.19x of
# passive (this count: 0.52x; training steps with the default were once ten times slower).
# ``benchmarks/openmp_wait.py`` measures the three.
OPENMP_SPIN_COUNT = "10000"
E = TypeVar("E", bound=MutableMapping[str, str])


def openmp_env(env: E) -> E:
    """``env`` for a torch process tunesmith starts, with its OpenMP threads' wait bounded
    (:data:`OPENMP_SPIN_COUNT`) unless the user chose a policy or a spin count. Read once,
    when the process loads OpenMP."""
    if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        env["GOMP_SPINCOUNT"] = OPENMP_SPIN_COUNT
    return env


def worker_env(env: E) -> E:
    """``env`` for a tuning worker tunesmith starts: OpenMP's wait bounded
    (:func:`openmp_env`), and jemalloc as its memory allocator where the system has it
    (``libjemalloc2`` on Debian and Ubuntu, ``jemalloc`` on Fedora), unless ``LD_PRELOAD`` is
    set (an empty value keeps glibc's). A training step allocates and frees thousands of
    tensors; glibc's ``posix_memalign`` and ``free`` took about a tenth of it, and steps run
    about a tenth faster with jemalloc (docs/benchmarks.md)."""
    openmp_env(env)
    if "LD_PRELOAD" not in env and (lib := _jemalloc()):
        env["LD_PRELOAD"] = lib
    return env


@functools.cache
def _jemalloc() -> str | None:
    if not sys.platform.startswith("linux"):
        return None  # macOS has no LD_PRELOAD; its allocator is not glibc's
    return ctypes.util.find_library("jemalloc")


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["TUNESMITH_HOME"] = str(settings.home)
    env["TUNESMITH_DATABASE_URL"] = settings.database_url
    env.pop("TUNESMITH_API_ENDPOINT", None)
    return openmp_env(env)


def ensure_worker(settings: Settings) -> bool:
    """Start the home's background worker unless one runs, else wake the one that runs (see
    :func:`job_wakes`). Returns True if it started one."""
    command = worker_command("--embedded", "--idle-exit", str(settings.worker_idle_seconds))
    env = worker_env(_env(settings))
    if spawn(_lock_path(settings), command, settings.logs_dir / "worker.log", env):
        return True
    _wake_worker(settings)
    return False


def job_wakes(settings: Settings) -> int | None:
    """The running embedded worker's end of the home's wake pipe (:attr:`Settings.worker_wake`,
    made here), open for reading: a byte arrives whenever a caller queues a job, so an idle
    worker claims it at once rather than at its next look at the queue, up to a second
    later (a user's next script, finding the worker the last one left running). None if
    the pipe cannot be made; the worker then only looks."""
    path = settings.worker_wake
    try:
        with contextlib.suppress(FileExistsError):
            os.mkfifo(path, 0o600)
        # Read and write: a reader alone would see end-of-file after each caller's write.
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _wake_worker(settings: Settings) -> None:
    """Write a byte to the running worker's wake pipe; nothing if no worker reads it."""
    try:  # ENXIO: no process has it open for reading; ENOENT: no worker made it yet
        fd = os.open(settings.worker_wake, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            with contextlib.suppress(BlockingIOError):  # full of unread wakes: one is enough
                os.write(fd, b"j")
    finally:
        os.close(fd)


def worker_lock(settings: Settings, fd: int | None = None):
    """The embedded worker's lock (see :func:`hold_lock`)."""
    return hold_lock(_lock_path(settings), fd)


# -- the generation server -----------------------------------------------------------------


def _embedded(settings: Settings) -> Settings:
    return dataclasses.replace(settings, api_endpoint=None, api_key=None)


def settings_to_json(settings: Settings) -> str:
    return json.dumps(dataclasses.asdict(_embedded(settings)), sort_keys=True, default=str)


def settings_from_json(text: str) -> Settings:
    values = json.loads(text)
    return Settings(**{**values, "home": Path(values["home"])})


def generation_paths(settings: Settings) -> tuple[Path, Path]:
    """The generation server's lock file and socket for these settings."""
    from ..version import __version__

    environment = os.path.realpath(sys.prefix)  # a virtualenv: the packages it will import
    identity = json.dumps(
        [settings_to_json(settings), __version__, environment, socket.gethostname()]
    )
    name = "generation-" + hashlib.sha256(identity.encode()).hexdigest()[:16]
    lock = settings.run_dir / f"{name}.lock"
    return lock, socket_beside(lock)


def socket_beside(lock: Path) -> Path:
    """The socket of the server that holds ``lock``: next to it, or for a home whose path is
    too long for a socket, in a folder of this user's under the temporary directory."""
    sock = lock.with_suffix(".sock")
    if len(os.fsencode(sock)) > MAX_SOCKET_PATH:
        sock = _private_dir() / sock.name
    return sock


def _private_dir() -> Path:
    """A folder only this user may enter, for sockets whose home path is too long."""
    folder = Path(tempfile.gettempdir()) / f"tunesmith-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{folder} is not a private folder of this user")
    return folder


def ensure_generation_server(settings: Settings) -> bool:
    """Start the generation server for these settings unless one runs; True if it started."""
    lock, _ = generation_paths(settings)
    env = _env(settings)
    env[SETTINGS_ENV] = settings_to_json(settings)
    command = [sys.executable, "-m", "tunesmith.api.local"]
    return spawn(lock, command, settings.logs_dir / "generation.log", env)
