"""The composition root: the one place that builds a tunesmith process's parts from
:class:`~tunesmith.settings.Settings` and wires them together.

    Settings ─▶ Store ─▶ Service (tuning, generation, permissions, exports, imports, keys)
                  │         │ on_enqueue = Runtime.job_queued
                  └─────────┴─▶ worker: how queued jobs get run (one of WORKERS)

The HTTP server (:func:`tunesmith.api.app.create_app`), the CLI and the embedded SDK each
build a :class:`Runtime` and use its ``service``; nothing else opens a store, builds a
service or starts a worker. "A job was queued" has one path: the service calls
:meth:`Runtime.job_queued`, which tells whichever worker this runtime has.

Workers (``worker=``):

- ``"process"``: a supervised child process (:mod:`tunesmith.jobs.supervisor`), the server's
  default: a hung run is failed and its process replaced while the server keeps serving;
- ``"embedded"``: the home's background worker process, started when a job is queued and
  leaving when idle (the embedded SDK and the CLI without a server);
- ``"thread"``: a worker thread in this process (tests that reach into the engine in-process);
- ``None``: none; jobs wait for ``tunesmith worker`` processes.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Literal

from .settings import Settings, get_settings
from .store import Store

if TYPE_CHECKING:
    from .jobs.supervisor import SupervisedWorker
    from .jobs.worker import Worker
    from .service import Service
    from .serving import ModelServer

WorkerKind = Literal["process", "embedded", "thread"]
WORKERS: tuple[WorkerKind, ...] = ("process", "embedded", "thread")

log = logging.getLogger("tunesmith.runtime")


class Runtime:
    """A store, the service over it and the worker that runs its jobs."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        worker: WorkerKind | None = None,
        offered_base_models_only: bool = False,
        hub_api: Any = None,
        model_server: ModelServer | None = None,
    ):
        """``offered_base_models_only``: callers are remote (a server's), so they name only
        the base models the operator offers; False for the user's own process (embedded SDK,
        CLI). ``hub_api``: an ``HfApi`` for hub size checks (None: huggingface_hub's)."""
        from .service import Service

        if worker is not None and worker not in WORKERS:
            raise ValueError(f"unknown worker {worker!r} (use one of {', '.join(WORKERS)})")
        self.settings = settings or get_settings()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.worker_kind = worker
        self.store = Store(self.settings.database_url)
        self.service: Service = Service(
            self.settings,
            store=self.store,
            model_server=model_server,
            on_enqueue=self.job_queued,
            offered_base_models_only=offered_base_models_only,
            hub_api=hub_api,
        )
        self.supervisor: SupervisedWorker | None = None
        self.thread_worker: Worker | None = None
        self._thread: threading.Thread | None = None

    # -- the worker --------------------------------------------------------------------------

    def start_worker(self) -> None:
        """Start this runtime's worker (``process`` or ``thread``; an ``embedded`` worker
        starts when a job is queued). Blocking: call it off an event loop."""
        if self.worker_kind == "process" and self.supervisor is None:
            from .jobs.supervisor import SupervisedWorker

            self.supervisor = SupervisedWorker(self.settings, self.store)
            self.supervisor.start()
        elif self.worker_kind == "thread" and self.thread_worker is None:
            from .jobs.worker import Worker

            preload_transformers()
            self.thread_worker = Worker(self.settings, self.store)
            self._thread = threading.Thread(
                target=self.thread_worker.run, name="tunesmith-worker", daemon=True
            )
            self._thread.start()

    @property
    def worker_running(self) -> bool:
        if self.supervisor is not None:
            return self.supervisor.alive
        return self._thread is not None and self._thread.is_alive()

    def job_queued(self) -> None:
        """The one signal that a job was queued (called by the service after its commit)."""
        if self.supervisor is not None:
            self.supervisor.wake()
        elif self.thread_worker is not None:
            self.thread_worker.wake.set()
        elif self.worker_kind == "embedded":
            from .jobs.embedded import ensure_worker

            ensure_worker(self.settings)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker (a running job pauses at its next step, checkpointed, and goes
        back to the queue; one still running after ``timeout`` is left to its lease), then
        close the store. Blocking."""
        if self.supervisor is not None:
            self.supervisor.shutdown(timeout)
        if self.thread_worker is not None and self._thread is not None:
            self.thread_worker.shutdown()
            self._thread.join(timeout)
        self.service.close()


def preload_transformers() -> None:
    """transformers' lazy imports are not thread-safe: a worker thread and a request thread
    importing it at once failed a tuning job with "cannot import name 'AutoTokenizer'" under
    load (benchmarks/load.py). A process that uses it from several threads imports it once,
    first."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401
