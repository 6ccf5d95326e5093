"""The server's built-in worker: a child process the server starts, watches and restarts.

A run that hangs inside torch cannot be interrupted from the thread that runs it, so the
server does not run jobs itself. It starts a worker process (``--supervised``) and talks
to it over two pipes:

- the child reports on one: ``run <operation> <worker>`` when it claims a job, ``step`` at
  each finished step (or move of a base model's preparation), ``idle`` when the run ended;
- the server writes a byte on the other whenever a job is queued, so the child claims it at
  once instead of at its next poll.

The supervisor's thread watches both the child and the run:

- a run with no progress for ``progress_timeout_seconds`` is failed with DEADLINE_EXCEEDED
  and a message naming the stall, the child is killed and a new one started;
- a child that dies (killed, out of memory) hands its job back at once (the next run resumes
  from its checkpoint; a job whose runs keep dying fails after ``max_attempts``) and is
  started again, more slowly if it keeps dying.

The server stays up through both, and holds no training copy of a base model.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from ..errors import DeadlineExceeded
from ..settings import Settings
from ..store import JobStatus, Store
from . import worker_command
from .embedded import SETTINGS_ENV, settings_to_json, worker_env

log = logging.getLogger("tunesmith.supervisor")

_PR_SET_PDEATHSIG = 1
RESTARTS_BEFORE_BACKOFF = 3  # within a minute; then wait BACKOFF_SECONDS between starts
BACKOFF_SECONDS = 5.0


def die_with_parent() -> None:
    """Runs in a child between fork and exec: the kernel sends it SIGTERM when its parent
    dies (Linux), so a killed server or pool leaves no worker behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def stall_message(seconds: float) -> str:
    return (
        f"The run stalled: no progress for {seconds:g} seconds (its stall limit, "
        "TUNESMITH_PROGRESS_TIMEOUT_SECONDS); its worker was stopped and restarted."
    )


class Reporter:
    """The child's end: what the worker tells its supervisor (see the module's docstring)."""

    def __init__(self, fd: int):
        self._out = os.fdopen(fd, "w", buffering=1)
        self._lock = threading.Lock()

    def _say(self, line: str) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._out.write(line + "\n")

    def started(self, operation_id: str, worker_id: str) -> None:
        self._say(f"run {operation_id} {worker_id}")

    def progressed(self) -> None:
        self._say("step")

    def ended(self) -> None:
        self._say("idle")


def listen_for_wakes(fd: int, wake: threading.Event) -> None:
    """The child's other end: set ``wake`` for every byte the supervisor writes on ``fd``."""

    def listen() -> None:
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while pipe.read(64):
                wake.set()

    threading.Thread(target=listen, name="wake-listener", daemon=True).start()


class SupervisedWorker:
    """Starts one worker process and keeps it running until :meth:`shutdown`."""

    def __init__(self, settings: Settings, store: Store, *, watch_seconds: float = 0.5):
        self.settings = settings
        self.store = store
        self.watch_seconds = watch_seconds
        self.child: subprocess.Popen | None = None
        self.restarts = 0  # children started after the first (for /healthz and tests)
        self._wake_w: int | None = None
        self._job: tuple[str, str] | None = None  # (operation, worker) the child runs
        self._last_progress = time.monotonic()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the server calls ---------------------------------------------------------------

    def start(self) -> None:
        self._spawn()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A job was queued: the child claims it now rather than at its next poll."""
        fd = self._wake_w
        if fd is not None:
            with contextlib.suppress(OSError):  # full (it is awake anyway) or closed
                os.write(fd, b"w")

    @property
    def alive(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop watching; the child pauses its run at a checkpoint and hands the job back
        (SIGTERM); one still running after ``timeout`` is killed and left to its lease."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in time; killing it", child.pid)
                child.kill()
                child.wait()
        self._close_wake()

    # -- the child ---------------------------------------------------------------------------

    def _spawn(self) -> None:
        report_r, report_w = os.pipe()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        env = worker_env(dict(os.environ))
        env[SETTINGS_ENV] = settings_to_json(self.settings)
        args = ["--supervised", str(report_w), "--wake-fd", str(wake_r)]
        try:
            self.child = subprocess.Popen(
                worker_command(*args),
                env=env,
                pass_fds=(report_w, wake_r),
                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
                process_group=0,  # Ctrl-C reaches the server only; the server tells the worker
            )
        finally:
            os.close(report_w)
            os.close(wake_r)
        self._close_wake()
        self._wake_w = wake_w
        with self._lock:
            self._job = None
        log.info("worker process started: pid %d", self.child.pid)
        threading.Thread(
            target=self._read, args=(report_r,), name="worker-reports", daemon=True
        ).start()

    def _close_wake(self) -> None:
        fd, self._wake_w = self._wake_w, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "r") as reports:
            for line in reports:
                word, *rest = line.split()
                with self._lock:
                    self._last_progress = time.monotonic()
                    if word == "run" and len(rest) == 2:
                        self._job = (rest[0], rest[1])
                    elif word == "idle":
                        self._job = None

    def _watch(self) -> None:
        started: list[float] = []
        while not self._stopping.wait(self.watch_seconds):
            child = self.child
            assert child is not None
            with self._lock:
                job, last = self._job, self._last_progress
            if child.poll() is not None:
                if self._stopping.is_set():
                    return
                log.warning("worker pid %d exited %s", child.pid, child.returncode)
                if job is not None:  # hand it back now rather than when its lease lapses
                    self.store.jobs.give_up_lease(*job)
            elif (
                job is not None and time.monotonic() - last > self.settings.progress_timeout_seconds
            ):
                self._fail_stalled(child, *job)
            else:
                continue
            started = [t for t in started if time.monotonic() - t < 60]
            if len(started) >= RESTARTS_BEFORE_BACKOFF and self._stopping.wait(BACKOFF_SECONDS):
                return
            started.append(time.monotonic())
            self.restarts += 1
            self._spawn()

    def _fail_stalled(self, child: subprocess.Popen, operation_id: str, worker_id: str) -> None:
        from ..engine import checkpoint
        from .worker import checkpoint_dir

        seconds = self.settings.progress_timeout_seconds
        log.error(
            "%s made no progress for %gs; killing worker pid %d", operation_id, seconds, child.pid
        )
        child.kill()  # a hung run cannot be stopped from inside
        child.wait()
        if self.store.jobs.finish(
            operation_id,
            worker_id,
            JobStatus.FAILED,
            error_code=DeadlineExceeded.grpc_code,
            error_message=stall_message(seconds),
        ):
            checkpoint.remove(checkpoint_dir(self.settings, operation_id))
