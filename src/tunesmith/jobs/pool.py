"""Worker pools behind ``tunesmith worker --concurrency N [--executor local|ray]``.

``local``: N worker processes (:func:`tunesmith.jobs.worker_command`) on this machine, each
claiming jobs from the database on its own, so one job never runs twice at once however many
pools run on however many machines. The pool restarts a worker that dies (its job is resumed
from its checkpoint by whoever claims it next). On SIGTERM / SIGINT it asks every worker to
pause its run at a checkpoint and hand the job back, waits for them, then exits. If the pool
itself is killed, each worker is sent SIGTERM by the kernel (Linux) and does the same.

``ray``: see :mod:`tunesmith.jobs.ray_executor`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from ..settings import Settings
from . import worker_command
from .embedded import worker_env
from .signals import on_stop_signals
from .supervisor import die_with_parent

log = logging.getLogger("tunesmith.pool")


class LocalPool:
    """Keeps ``concurrency`` worker processes running until told to stop."""

    def __init__(self, concurrency: int, *, grace_seconds: float = 120.0):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.grace_seconds = grace_seconds
        self.stopping = threading.Event()
        self.children: list[subprocess.Popen | None] = [None] * concurrency

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(
            worker_command(),
            env=worker_env(dict(os.environ)),
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
            process_group=0,  # Ctrl-C reaches the pool only; the pool tells each worker
        )

    def run(self) -> None:
        restarts: list[float] = []
        while not self.stopping.is_set():
            for i, child in enumerate(self.children):
                if child is not None and child.poll() is None:
                    continue
                if child is not None:
                    log.warning("worker %d (pid %d) exited %s", i, child.pid, child.returncode)
                    restarts.append(time.monotonic())
                self.children[i] = new = self._spawn()
                log.info("worker %d: pid %d", i, new.pid)
            restarts = [t for t in restarts if time.monotonic() - t < 60]
            # A worker that dies at once over and over should not spin the machine.
            self.stopping.wait(5.0 if len(restarts) > 3 * self.concurrency else 0.5)
        self._stop_children()

    def _stop_children(self) -> None:
        alive = [c for c in self.children if c is not None and c.poll() is None]
        for c in alive:
            c.send_signal(signal.SIGTERM)  # pause at a checkpoint, hand the job back
        deadline = time.monotonic() + self.grace_seconds
        for c in alive:
            try:
                c.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in time; killing it", c.pid)
                c.kill()  # its lease lapses; the job resumes from its last checkpoint
                c.wait()

    def stop(self) -> None:
        self.stopping.set()


def run_pool(
    settings: Settings,
    *,
    concurrency: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    cpus_per_job: float = 1.0,
    gpus_per_job: float = 0.0,
) -> None:
    """Run workers in the foreground until SIGTERM / SIGINT; what ``tunesmith worker`` calls."""
    if executor == "ray":
        from .ray_executor import RayPool

        pool: RayPool | LocalPool = RayPool(
            settings,
            concurrency,
            address=ray_address,
            cpus_per_job=cpus_per_job,
            gpus_per_job=gpus_per_job,
        )
    elif executor == "local":
        pool = LocalPool(concurrency)
    else:
        raise ValueError(f"unknown executor '{executor}' (use 'local' or 'ray')")
    on_stop_signals(pool.stop)
    pool.run()


def main(argv: list[str] | None = None) -> None:
    import argparse

    from ..settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m tunesmith.jobs.pool")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument("--ray-address", default=None)
    parser.add_argument("--cpus-per-job", type=float, default=1.0)
    parser.add_argument("--gpus-per-job", type=float, default=0.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run_pool(
        get_settings(),
        concurrency=args.concurrency,
        executor=args.executor,
        ray_address=args.ray_address,
        cpus_per_job=args.cpus_per_job,
        gpus_per_job=args.gpus_per_job,
    )


if __name__ == "__main__":
    main()
