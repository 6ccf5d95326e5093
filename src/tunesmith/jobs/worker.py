"""Workers: claim a queued tuning job under a lease, run the recipe, record the outcome.

A job is claimed atomically (see :meth:`JobQueue.claim`) and its lease renewed by every
step's snapshot and by a heartbeat thread (a step can be slow). A run ends in exactly one of
these ways:

- it finishes: ACTIVE with the adapter; or an error: FAILED with the reason (exception, NaN
  loss, out of memory, a base model that cannot load);
- the user cancels: the next step or heartbeat sees it, the run stops, CANCELLED (code 1);
- the user pauses: the next step or heartbeat sees it, the run saves a checkpoint of that
  step and the job waits PAUSED, in its place in the queue, until resumed (then the next
  worker carries on from that step);
- the worker is told to shut down (SIGTERM): the run pauses at the end of its step, saves a
  checkpoint and hands the job back to the queue; the next worker resumes from that step;
- the worker dies (SIGKILL, a lost machine): its lease lapses and the next worker takes the
  job over from the newest periodic checkpoint (every ``checkpoint_every`` steps);
- the run stops making progress (no step for ``progress_timeout_seconds``): the worker gives
  up the lease so another worker retries it; a standalone worker process then exits, since
  the hung run cannot be interrupted from inside. A worker supervised by a server
  (:mod:`tunesmith.jobs.supervisor`) leaves that to its supervisor instead, which fails the
  run with the reason, kills the worker and starts a new one.

A job whose runs keep dying is failed after ``max_attempts`` (see the queue).

    python -m tunesmith.jobs.worker [--idle-exit SECONDS] [--embedded | --supervised FD]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..engine import base_models, checkpoint, models, recipe
from ..errors import TunesmithError
from ..records.conversations import Conversation
from ..settings import Settings, get_settings
from ..store import ClaimedJob, JobStatus, Store, utcnow
from ..store.queue import CANCELLED_CODE, CANCELLED_MESSAGE
from ..types import Phase, TuningSnapshot

if TYPE_CHECKING:
    from .supervisor import Reporter

log = logging.getLogger("tunesmith.worker")

# gRPC codes for how a run failed.
INTERNAL, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, INVALID_ARGUMENT = 13, 9, 8, 3
HUNG_EXIT_CODE = 75
# A first run's base-model conversion writes its progress to the store when it moved this
# much, or this long after the last write.
PHASE_WRITE_STEP, PHASE_WRITE_SECONDS = 0.05, 0.5
_OOM = (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_recipe(
    settings: Settings,
    store: Store,
    job: ClaimedJob,
    *,
    on_prepare: base_models.Progress | None = None,
) -> recipe.Recipe:
    """Turn a claimed job into the engine's recipe (the engine never sees the store).

    ``on_prepare`` hears how far a first run's conversion of the base model is.
    """
    model = job.model
    spec, base_dir = _base_model(settings, model.base_model, on_prepare)
    init_adapter = None
    if model.tuned_model_source:
        parent_id = model.tuned_model_source.removeprefix("tunedModels/")
        parent = store.weights(parent_id)
        if parent is None or parent.path is None:
            raise TunesmithError(f"{model.tuned_model_source}: its weights are gone")
        parent_dir = settings.stored_path(parent.path)
        if not parent.is_adapter:
            base_dir = parent_dir  # the parent was fully tuned: continue from its weights
        else:  # continue the parent's adapter, over the weights it sits on
            init_adapter = parent_dir
            if parent.foundation:
                base_dir = settings.stored_path(parent.foundation)
    hp = model.tuning_task.hyperparameters
    # The service stores every hyperparameter it defaults when it queues the job.
    assert hp.epoch_count is not None and hp.batch_size is not None
    return recipe.Recipe(
        base_dir=base_dir,
        examples=[_example(e) for e in job.examples],
        output_dir=settings.adapters_dir / job.operation_id,
        epoch_count=hp.epoch_count,
        batch_size=hp.batch_size,
        learning_rate=hp.learning_rate,
        learning_rate_multiplier=hp.learning_rate_multiplier or 1.0,
        method=job.method,
        prompt_template=spec.prompt_template,
        init_adapter_dir=init_adapter,
        seed=settings.seed if job.seed is None else job.seed,
        epoch_checkpoint_dir=settings.served_checkpoint_dir(model.id),
        validation_examples=[_example(e) for e in job.validation_examples],
    )


def _base_model(
    settings: Settings, name: str, on_prepare: base_models.Progress | None = None
) -> tuple[base_models.BaseModelSpec, Path]:
    """The base model ``name`` names here, and its folder (converted on first use)."""
    spec = base_models.resolve(name, settings.default_base_model, dict(settings.base_models))
    return spec, base_models.materialize(spec, settings.base_models_dir, on_prepare)


def _example(e):
    """A stored example as the recipe takes it: a conversation, or an (input, output) pair."""
    return e if isinstance(e, Conversation) else (e.text_input, e.output)


def checkpoint_dir(settings: Settings, operation_id: str) -> Path:
    return settings.checkpoints_dir / operation_id


class _Control:
    """Why a run should stop, set once by whoever notices first."""

    def __init__(self):
        self.why: str | None = None  # cancelled | paused | lost | shutdown | hung
        self.event = threading.Event()
        self.last_progress = time.monotonic()

    def stop(self, why: str) -> None:
        if self.why is None:
            self.why = why
        self.event.set()


def run_job(
    settings: Settings,
    store: Store,
    job: ClaimedJob,
    shutdown: threading.Event | None = None,
    *,
    exit_on_hang: bool = False,
    on_progress: Callable[[], None] | None = None,
    watch_progress: bool = True,
) -> JobStatus | None:
    """Run one claimed job and record how it ended. Never raises for a failed run.

    Returns the job's end status, or None when the job is no longer this worker's to end
    (handed back at shutdown, taken over after a lost lease, or given up as hung).

    ``on_progress`` hears each finished step and each move of the base model's preparation;
    ``watch_progress=False`` leaves noticing a hung run to whoever listens to it (a
    supervisor) rather than giving up the lease here.
    """
    jobs, lease = store.jobs, settings.lease_seconds
    shutdown = shutdown or threading.Event()
    ctl = _Control()
    held: dict[str, Any] = dict(operation_id=job.operation_id, worker_id=job.worker_id)
    ckpt = checkpoint_dir(settings, job.operation_id)

    def beat():
        while not ctl.event.wait(min(5.0, max(0.2, lease / 4))):
            stalled = time.monotonic() - ctl.last_progress > settings.progress_timeout_seconds
            if watch_progress and stalled:
                log.error("%s made no progress; giving up its lease", job.operation_id)
                ctl.stop("hung")
                jobs.give_up_lease(**held)
                if exit_on_hang:
                    os._exit(HUNG_EXIT_CODE)
            elif not jobs.heartbeat(**held, lease_seconds=lease):
                ctl.stop(jobs.stop_reason(**held))

    def progressed() -> None:
        ctl.last_progress = time.monotonic()
        if on_progress is not None:
            on_progress()

    def on_step(r: recipe.StepReport):
        progressed()
        snap = TuningSnapshot(r.step, r.epoch, r.mean_loss, utcnow())
        if ctl.why is None and not jobs.record_step(
            **held, snapshot=snap, lease_seconds=lease, validation_loss=r.validation_loss
        ):
            ctl.stop(jobs.stop_reason(**held))
        if ctl.why is None and shutdown.is_set():
            ctl.stop("shutdown")
        if ctl.why is None:
            return True
        # Handed back or paused: save this step first, so the run carries on from it.
        return checkpoint.PAUSE if ctl.why in ("shutdown", "paused") else False

    written: dict[str, Any] = {}  # the base model's preparation: when and what it last wrote

    def on_prepare(fraction: float | None):
        # A first run converts its base model: say so, with its progress (written when it
        # moved by PHASE_WRITE_STEP or after PHASE_WRITE_SECONDS), and stop converting when
        # the job is cancelled.
        progressed()
        now = ctl.last_progress
        due = not written or fraction is None or fraction >= 1.0
        if not due and fraction is not None:  # (not due: fraction is a number)
            moved = fraction - (written["fraction"] or 0.0)
            due = moved >= PHASE_WRITE_STEP or now - written["at"] >= PHASE_WRITE_SECONDS
        if due and ctl.why is None:
            written.update(at=now, fraction=fraction)
            if not jobs.record_phase(**held, phase=Phase.PREPARING_BASE_MODEL, progress=fraction):
                ctl.stop(jobs.stop_reason(**held))
        if ctl.why is None and shutdown.is_set():
            ctl.stop("shutdown")
        if ctl.why is not None:
            raise recipe.Stopped(f"stopped while preparing the base model ({ctl.why})")

    beater = threading.Thread(target=beat, name="heartbeat", daemon=True)
    beater.start()
    try:
        r = build_recipe(settings, store, job, on_prepare=on_prepare)
        if written:  # the base model is ready now: the run loads it
            jobs.record_phase(**held, phase=Phase.LOADING_BASE_MODEL)
        r.checkpoint_dir, r.checkpoint_every = ckpt, settings.checkpoint_every
        done = checkpoint.latest_step(ckpt)
        if job.completed_steps > done:
            jobs.rewind(**held, step=done)  # steps after the checkpoint run again
        if done:
            log.info("%s resumes after step %d", job.operation_id, done)
        out = recipe.run(r, on_step)
        rel = settings.path_to_store(Path(out))
        if not jobs.finish(**held, status=JobStatus.SUCCEEDED, adapter_path=rel):
            return None  # another worker took the job over; its checkpoints are its own
        checkpoint.remove(ckpt)
        return JobStatus.SUCCEEDED
    except recipe.Stopped:
        if ctl.why == "cancelled" and jobs.finish(
            **held,
            status=JobStatus.CANCELLED,
            error_code=CANCELLED_CODE,
            error_message=CANCELLED_MESSAGE,
        ):
            checkpoint.remove(ckpt)
            return JobStatus.CANCELLED
        if ctl.why == "shutdown":
            jobs.release(**held)
        if ctl.why == "paused" and jobs.pause(**held):
            return JobStatus.PAUSED
        return None
    except KeyboardInterrupt:  # e.g. a Ray task cancelled by its driver
        jobs.release(**held)
        raise
    except recipe.NonFiniteLoss as e:
        code, message = INVALID_ARGUMENT, str(e)
    except _OOM:
        code, message = RESOURCE_EXHAUSTED, "out of memory; try a smaller batch_size"
    except TunesmithError as e:
        code, message = e.grpc_code, e.message
    except Exception as e:  # a failed run must end FAILED with its reason, never hang
        log.exception("job %s failed", job.operation_id)
        code, message = INTERNAL, f"{type(e).__name__}: {e}"
    finally:
        ctl.event.set()
        beater.join(timeout=10)
    if jobs.finish(**held, status=JobStatus.FAILED, error_code=code, error_message=message):
        checkpoint.remove(ckpt)
        return JobStatus.FAILED
    return None


class Worker:
    """Claims and runs jobs one at a time until stopped (or idle for ``idle_exit`` s).

    The in-process twin of a worker process: tests and the embedded SDK run it directly.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        *,
        poll_seconds: float = 1.0,
        idle_exit: float | None = None,
        exit_on_hang: bool = False,
        reporter: Reporter | None = None,
        ready: bool = False,
    ):
        """``reporter``: the supervisor that watches this worker's runs (then the worker
        leaves a hung run to it, see :mod:`tunesmith.jobs.supervisor`). ``ready``: if the
        queue is empty when it starts, prepare the default base model meanwhile
        (:meth:`ready`)."""
        self.settings = settings
        self.store = store or Store(settings.database_url)
        self.worker_id = new_worker_id()
        self.poll_seconds = poll_seconds
        self.idle_exit = idle_exit
        self.exit_on_hang = exit_on_hang
        self.reporter = reporter
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.shutting_down = threading.Event()
        self.readied = not ready
        self.readying: Path | None = None  # the scratch folder of a readying in progress

    def ready(self) -> None:
        """Load the default base model (and the layers setup compiled ahead for it) as a
        first job would, while there is no job: that job then starts training at once
        (:func:`tunesmith.engine.recipe.ready`). An optimisation: whatever goes wrong is
        logged, and the job does the work itself."""
        s, started = self.settings, time.monotonic()
        try:
            spec, base_dir = _base_model(s, s.default_base_model)
            log.info("worker %s readying %s", self.worker_id, spec.name)
            with tempfile.TemporaryDirectory(prefix="tunesmith-ready-") as scratch:
                self.readying = Path(scratch)
                try:
                    if self.stopping.is_set():  # told to stop before it could know to leave
                        raise recipe.Stopped
                    compiled = recipe.ready(
                        base_dir,
                        spec.prompt_template,
                        self.readying,
                        lambda _r: not self.stopping.is_set(),
                    )
                finally:
                    self.readying = None
        except recipe.Stopped:
            return
        except Exception as e:  # noqa: BLE001 - never a reason for the worker to fail
            log.warning("worker %s not readied (%s: %s)", self.worker_id, type(e).__name__, e)
            return
        log.info(
            "worker %s ready in %.1f s: %s loaded%s",
            self.worker_id,
            time.monotonic() - started,
            spec.name,
            ", its layers compiled" if compiled else "",
        )

    def run_once(self) -> bool:
        s = self.settings
        job = self.store.jobs.claim(self.worker_id, s.lease_seconds, s.max_attempts)
        if job is None:
            return False
        log.info("running %s (attempt %d)", job.operation_id, job.attempt)
        reporter = self.reporter
        if reporter is not None:
            reporter.started(job.operation_id, job.worker_id)
        try:
            status = run_job(
                s,
                self.store,
                job,
                self.shutting_down,
                exit_on_hang=self.exit_on_hang,
                on_progress=reporter.progressed if reporter else None,
                watch_progress=reporter is None,
            )
        finally:
            if reporter is not None:
                reporter.ended()
        log.info("%s: %s", job.operation_id, status.value if status else "handed on")
        return True

    def sweep_checkpoints(self) -> None:
        """Remove checkpoints of jobs that ended without their worker (cancelled while it
        was dead, failed after too many attempts) or whose model was deleted."""
        folder = self.settings.checkpoints_dir
        ids = [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
        for op_id in set(ids) - self.store.jobs.live(ids):
            checkpoint.remove(folder / op_id)

    def run(self, should_exit=lambda: False) -> None:
        idle_since = time.monotonic()
        swept = False
        while not self.stopping.is_set():
            try:
                if self.run_once():
                    idle_since, swept = time.monotonic(), False  # sweep after each busy spell
                    self.readied = True  # the job left its base loaded
                    continue
                if not self.readied:
                    self.readied = True
                    self.ready()
                    continue  # a job may have come meanwhile
                if not swept:
                    self.sweep_checkpoints()
                    swept = True
            except Exception:  # the database is away for a moment: keep the worker alive
                log.exception("claiming a job failed; retrying")
            if self.idle_exit is not None and time.monotonic() - idle_since > self.idle_exit:
                if should_exit():
                    return
                idle_since = time.monotonic()
            self.wake.wait(self.poll_seconds)
            self.wake.clear()

    def stop(self) -> None:
        """Claim nothing more; a running job carries on to its end."""
        self.stopping.set()
        self.wake.set()

    def shutdown(self) -> None:
        """Claim nothing more; a running job pauses at its next step, checkpointed, and
        goes back to the queue for the next worker."""
        self.shutting_down.set()
        self.stop()


def main(argv: list[str] | None = None) -> None:
    from .embedded import SETTINGS_ENV, job_wakes, settings_from_json, worker_lock
    from .signals import on_stop_signals
    from .supervisor import Reporter, listen_for_wakes

    parser = argparse.ArgumentParser(prog="python -m tunesmith.jobs.worker")
    parser.add_argument("--idle-exit", type=float, default=None)
    parser.add_argument("--embedded", action="store_true", help="one per TUNESMITH_HOME")
    parser.add_argument("--lock-fd", type=int, default=None, help="the home's lock, held")
    parser.add_argument(
        "--supervised", type=int, default=None, metavar="FD", help="report runs on FD"
    )
    parser.add_argument("--wake-fd", type=int, default=None, help="a byte here: a job was queued")
    args = parser.parse_args(argv)
    given = os.environ.get(SETTINGS_ENV)  # a supervisor's settings, which may not be the env's
    settings = settings_from_json(given) if given else get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    models.settle_between_jobs()  # this process keeps one base from job to job
    reporter = Reporter(args.supervised) if args.supervised is not None else None
    worker = Worker(
        settings,
        idle_exit=args.idle_exit,
        exit_on_hang=reporter is None,
        reporter=reporter,
        # An embedded worker starts for a job already queued; it has nothing to wait for.
        ready=settings.worker_ready and not args.embedded,
    )
    if args.wake_fd is not None:
        listen_for_wakes(args.wake_fd, worker.wake)

    def stop() -> None:
        scratch = worker.readying
        if scratch is not None:  # only throwaway work in flight: leave now, not seconds later
            log.info("worker %s stopped while readying", worker.worker_id)
            shutil.rmtree(scratch, ignore_errors=True)
            logging.shutdown()
            os._exit(0)
        worker.shutdown()

    on_stop_signals(stop)
    log.info("worker %s started", worker.worker_id)
    if not args.embedded:
        worker.run()
        return
    with worker_lock(settings, args.lock_fd) as lock:
        if lock is None:
            return  # another embedded worker serves this home
        if (wakes := job_wakes(settings)) is not None:
            listen_for_wakes(wakes, worker.wake)
        worker.run(should_exit=lock.release_if_idle(worker.store))


if __name__ == "__main__":
    main()
