"""Workers: claim a queued tuning job under a lease, run the recipe, record the outcome.

A job is claimed atomically (see :meth:`Store.claim_job`) and its lease renewed by every
step's snapshot and by a heartbeat thread (a step can be slow). When the lease cannot be
renewed (the job was cancelled, or another worker took it over after this one stalled) the
run stops at the next step. Every way a run can end is recorded: ACTIVE with the adapter,
or FAILED with the reason in the operation's error.

    python -m tunesmith.jobs.worker [--idle-exit SECONDS] [--once]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from ..engine import base_models, recipe
from ..errors import TunesmithError
from ..settings import Settings, get_settings
from ..store import ClaimedJob, JobStatus, Store, utcnow
from ..types import TuningSnapshot

log = logging.getLogger("tunesmith.worker")

# gRPC codes for how a run failed.
INTERNAL, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, INVALID_ARGUMENT = 13, 9, 8, 3


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_recipe(settings: Settings, store: Store, job: ClaimedJob) -> recipe.Recipe:
    """Turn a claimed job into the engine's recipe (the engine never sees the store)."""
    model = job.model
    spec = base_models.resolve(model.base_model, settings.default_base_model)
    base_dir = base_models.materialize(spec, settings.base_models_dir)
    init_adapter = None
    if model.tuned_model_source:
        parent_id = model.tuned_model_source.removeprefix("tunedModels/")
        parent = store.adapter_path(parent_id)
        if parent is None:
            raise TunesmithError(f"{model.tuned_model_source}: its weights are gone")
        parent_dir = settings.home / parent
        if (parent_dir / "adapter_config.json").is_file():
            init_adapter = parent_dir
        else:
            base_dir = parent_dir  # the parent was fully tuned: continue from its weights
    hp = model.tuning_task.hyperparameters
    return recipe.Recipe(
        base_dir=base_dir,
        examples=[(e.text_input, e.output) for e in job.examples],
        output_dir=settings.adapters_dir / job.operation_id,
        epoch_count=hp.epoch_count,
        batch_size=hp.batch_size,
        learning_rate=hp.learning_rate,
        learning_rate_multiplier=hp.learning_rate_multiplier or 1.0,
        method=job.method,
        prompt_template=spec.prompt_template,
        init_adapter_dir=init_adapter,
        seed=settings.seed,
    )


def run_job(settings: Settings, store: Store, job: ClaimedJob) -> JobStatus:
    """Run one claimed job to its end and record it. Never raises for a failed run."""
    stop = threading.Event()
    lease = settings.lease_seconds

    def beat():
        while not stop.wait(max(0.5, lease / 4)):
            if not store.heartbeat(job.operation_id, job.worker_id, lease):
                stop.set()

    def on_step(r: recipe.StepReport) -> bool:
        snap = TuningSnapshot(r.step, r.epoch, r.mean_loss, utcnow())
        keep_going = store.record_step(job.operation_id, job.worker_id, snap, lease)
        return keep_going and not stop.is_set()

    beater = threading.Thread(target=beat, name="heartbeat", daemon=True)
    beater.start()
    finish = dict(operation_id=job.operation_id, worker_id=job.worker_id)
    try:
        r = build_recipe(settings, store, job)
        out = recipe.run(r, on_step)
        rel = str(Path(out).relative_to(settings.home))
        store.finish_job(**finish, status=JobStatus.SUCCEEDED, adapter_path=rel)
        return JobStatus.SUCCEEDED
    except recipe.Stopped:
        store.finish_job(
            **finish,
            status=JobStatus.CANCELLED,
            error_code=1,
            error_message="Cancelled by the user.",
        )
        return JobStatus.CANCELLED
    except recipe.NonFiniteLoss as e:
        code, message = INVALID_ARGUMENT, str(e)
    except MemoryError:
        code, message = RESOURCE_EXHAUSTED, "out of memory; try a smaller batch_size"
    except TunesmithError as e:
        code, message = e.grpc_code, e.message
    except Exception as e:  # a failed run must end FAILED with its reason, never hang
        log.exception("job %s failed", job.operation_id)
        code, message = INTERNAL, f"{type(e).__name__}: {e}"
    finally:
        stop.set()
        beater.join(timeout=5)
    store.finish_job(**finish, status=JobStatus.FAILED, error_code=code, error_message=message)
    return JobStatus.FAILED


class Worker:
    """Claims and runs jobs one at a time until stopped (or idle for ``idle_exit`` s)."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        *,
        poll_seconds: float = 1.0,
        idle_exit: float | None = None,
    ):
        self.settings = settings
        self.store = store or Store(settings.database_url)
        self.worker_id = new_worker_id()
        self.poll_seconds = poll_seconds
        self.idle_exit = idle_exit
        self.wake = threading.Event()
        self.stopping = threading.Event()

    def run_once(self) -> bool:
        job = self.store.claim_job(self.worker_id, self.settings.lease_seconds)
        if job is None:
            return False
        log.info("running %s (attempt %d)", job.operation_id, job.attempt)
        status = run_job(self.settings, self.store, job)
        log.info("%s ended %s", job.operation_id, status.value)
        return True

    def run(self, should_exit=lambda: False) -> None:
        idle_since = time.monotonic()
        while not self.stopping.is_set():
            if self.run_once():
                idle_since = time.monotonic()
                continue
            if self.idle_exit is not None and time.monotonic() - idle_since > self.idle_exit:
                if should_exit():
                    return
                idle_since = time.monotonic()
            self.wake.wait(self.poll_seconds)
            self.wake.clear()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()


def main(argv: list[str] | None = None) -> None:
    from .embedded import worker_lock

    parser = argparse.ArgumentParser(prog="python -m tunesmith.jobs.worker")
    parser.add_argument("--idle-exit", type=float, default=None)
    parser.add_argument("--embedded", action="store_true", help="one per TUNESMITH_HOME")
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    worker = Worker(settings, idle_exit=args.idle_exit)
    if not args.embedded:
        worker.run()
        return
    with worker_lock(settings) as lock:
        if lock is None:
            return  # another embedded worker serves this home
        worker.run(should_exit=lock.release_if_idle(worker.store))


if __name__ == "__main__":
    main()
