"""The Ray executor: each claimed job runs as a Ray task on a Ray cluster.

``tunesmith worker --executor ray [--ray-address ADDRESS] --concurrency N`` runs a driver
that claims up to N jobs from the database and submits each as a task asking for
``--cpus-per-job`` CPUs and ``--gpus-per-job`` GPUs; Ray places it on a node with them free.
The task runs the same :func:`~tunesmith.jobs.worker.run_job` as a local worker: it renews the
job's lease, records snapshots, checkpoints and records the outcome in the database itself,
so every node must reach the database (PostgreSQL for a real cluster) and the storage:
``TUNESMITH_HOME`` must be one shared folder (NFS, a cluster file system) mounted at the same
path on every node, since base models, checkpoints and adapters are read and written there.

Without ``--ray-address`` a local Ray instance is started (loopback only), which is how the
tests run it. A task that dies with its node lets go of the job at once, so the next claim
resumes it from its last checkpoint; stopping the driver cancels its tasks, which hand their
jobs back to the queue.
"""

from __future__ import annotations

import logging
import threading

from ..settings import Settings
from ..store import ClaimedJob, Store
from .signals import on_stop_signals
from .worker import new_worker_id, run_job

log = logging.getLogger("tunesmith.ray")


def _run_remote(settings: Settings, job: ClaimedJob) -> str | None:
    """The body of a Ray task: run one claimed job on whichever node Ray chose."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    store = Store(settings.database_url, run_migrations=False)
    try:
        status = run_job(settings, store, job)
        return status.value if status else None
    finally:
        store.close()


class RayPool:
    def __init__(
        self,
        settings: Settings,
        concurrency: int,
        *,
        address: str | None = None,
        cpus_per_job: float = 1.0,
        gpus_per_job: float = 0.0,
        poll_seconds: float = 1.0,
        grace_seconds: float = 60.0,
    ):
        self.settings = settings
        self.concurrency = concurrency
        self.address = address
        self.cpus_per_job = cpus_per_job
        self.gpus_per_job = gpus_per_job
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        self.stopping = threading.Event()
        self.store = Store(settings.database_url)

    def _init_ray(self):
        import ray

        if self.address:
            ray.init(address=self.address, log_to_driver=True)
        else:  # a private local instance, reachable from this machine only
            ray.init(
                num_cpus=max(1, round(self.concurrency * self.cpus_per_job)),
                num_gpus=None if self.gpus_per_job else 0,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
            )
        return ray

    def run(self) -> None:
        ray = self._init_ray()
        if threading.current_thread() is threading.main_thread():
            # ray.init replaces the SIGTERM handler with one that aborts the process.
            on_stop_signals(self.stop)
        task = ray.remote(max_retries=0)(_run_remote).options(
            num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job
        )
        running: dict = {}  # ObjectRef -> ClaimedJob
        s = self.settings
        try:
            while not self.stopping.is_set():
                while len(running) < self.concurrency and not self.stopping.is_set():
                    job = self.store.jobs.claim(new_worker_id(), s.lease_seconds, s.max_attempts)
                    if job is None:
                        break
                    log.info("submitting %s (attempt %d) to Ray", job.operation_id, job.attempt)
                    running[task.remote(s, job)] = job
                if not running:
                    self.stopping.wait(self.poll_seconds)
                    continue
                done, _ = ray.wait(list(running), num_returns=1, timeout=self.poll_seconds)
                for ref in done:
                    self._collect(ray, ref, running.pop(ref))
            for ref in running:
                ray.cancel(ref)  # the task hands its job back to the queue
            if running:
                ray.wait(list(running), num_returns=len(running), timeout=self.grace_seconds)
            for ref, job in running.items():
                self._collect(ray, ref, job)
        finally:
            ray.shutdown()
            self.store.close()

    def _collect(self, ray, ref, job: ClaimedJob) -> None:
        jobs = self.store.jobs
        try:
            log.info("%s: %s", job.operation_id, ray.get(ref, timeout=0) or "handed on")
        except ray.exceptions.TaskCancelledError:
            jobs.release(job.operation_id, job.worker_id)  # stopped before it could
        except Exception as e:  # the task or its node died
            log.warning("%s: the Ray task ended with %s", job.operation_id, type(e).__name__)
            # Counts as an attempt; the next claim resumes it from its checkpoint without
            # waiting for the lease to lapse. Does nothing if the task no longer holds it.
            jobs.give_up_lease(job.operation_id, job.worker_id)

    def stop(self) -> None:
        self.stopping.set()
