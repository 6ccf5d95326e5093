"""The job queue: operations rows claimed under leases, renewed by heartbeats.

Every change of a job's status goes through :func:`move`, which refuses transitions outside
:data:`TRANSITIONS`::

    QUEUED ──claim──▶ RUNNING ──▶ SUCCEEDED | FAILED | CANCELLED
      │  ▲  ▲           │  ▲
      │  │  └──release──┘  └── reclaimed after its lease expired (attempts += 1)
      │  │                 │
      │  resume            └──pause: its worker saves a checkpoint at the step's end──┐
      │  │                                                                          ▼
      │  └──────────────────────────────── PAUSED ◀──pause (no worker holds it)── QUEUED
      │                                      │
      └──cancel / attempts used up──▶ CANCELLED | FAILED ◀──cancel──┘

A paused job keeps its checkpoint (:meth:`JobQueue.live` counts it, so no sweep removes it)
and its place in the queue: claims take the oldest ``created_at`` first, and resuming leaves
it as it was. A pause of a running job is a request (``pause_requested``) its worker hears at
its next step or heartbeat, as a cancel is; the worker then saves a checkpoint of that step
and moves the job to PAUSED itself (:meth:`JobQueue.pause`).

Claims never hand one job to two workers: SQLite takes the write lock at ``BEGIN
IMMEDIATE`` (as every write here does, see :func:`~tunesmith.store.db.write_session`); PostgreSQL locks the chosen row with ``FOR UPDATE SKIP LOCKED`` so racing
workers each take a different row. A worker that dies stops renewing its lease; the next
claim after the lease expires takes the job over (and resumes it from its checkpoint). A job
whose workers died ``max_attempts`` times is failed with the reason instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections.abc import Callable

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker, undefer

from ..errors import FailedPrecondition, NotFound
from ..records.conversations import Conversation
from ..types import Phase, TunedModel, TunedModelState, TuningExample, TuningSnapshot, as_utc
from .db import is_sqlite, write_session
from .tables import OperationRow, SnapshotRow, TunedModelRow, ValidationLossRow


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


_ENDS = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
_LIVE = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED)
TRANSITIONS: dict[JobStatus, set[JobStatus]] = {
    JobStatus.QUEUED: {JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.PAUSED},
    JobStatus.RUNNING: {JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.PAUSED} | _ENDS,
    JobStatus.PAUSED: {JobStatus.QUEUED, JobStatus.CANCELLED},
    JobStatus.SUCCEEDED: set(),
    JobStatus.FAILED: set(),
    JobStatus.CANCELLED: set(),
}

CANCELLED_CODE = 1  # gRPC CANCELLED
ABORTED_CODE = 10  # gRPC ABORTED: the run kept dying
CANCELLED_MESSAGE = "Cancelled by the user."


class IllegalTransition(RuntimeError):
    pass


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def move(op: OperationRow, to: JobStatus) -> None:
    current = JobStatus(op.status)
    if to not in TRANSITIONS[current]:
        raise IllegalTransition(f"operation {op.id}: {current.value} -> {to.value}")
    op.status = to.value


@dataclasses.dataclass
class ClaimedJob:
    """What a worker needs to run a job; the engine turns it into a recipe."""

    operation_id: str
    worker_id: str
    attempt: int
    model: TunedModel
    examples: list[TuningExample | Conversation]
    method: str
    total_steps: int
    completed_steps: int
    validation_examples: list[TuningExample | Conversation] = dataclasses.field(
        default_factory=list
    )
    seed: int | None = None
    """The run's seed when the job was given one (else the worker's setting)."""


class JobQueue:
    """The queue half of :class:`~tunesmith.store.Store` (``store.jobs``)."""

    def __init__(
        self,
        url: str,
        engine: Engine,
        sessions: sessionmaker,
        to_record: Callable[[Session, TunedModelRow], TunedModel],
    ):
        self.url = url
        self.engine = engine
        self._sessions = sessions
        self._to_record = to_record

    def claim(
        self, worker_id: str, lease_seconds: float, max_attempts: int = 3
    ) -> ClaimedJob | None:
        """Atomically take the oldest runnable job under a lease.

        Runnable: queued, or running with an expired lease (its worker died). A job that has
        used up its attempts is failed, and one cancelled while its worker was dead is
        cancelled, instead of being handed out again.
        """
        with write_session(self.engine) as s:
            now = self._now(s)
            q = (
                select(OperationRow)
                .options(undefer(OperationRow.training_data), undefer(OperationRow.validation_data))
                .where(_runnable(now))
                .order_by(OperationRow.created_at, OperationRow.id)
                .limit(1)
            )
            if not is_sqlite(self.url):
                q = q.with_for_update(skip_locked=True)
            while True:
                op = s.scalars(q).first()
                if op is None:
                    return None
                if op.cancel_requested:
                    finish(s, op, JobStatus.CANCELLED, CANCELLED_CODE, CANCELLED_MESSAGE, now)
                elif op.attempts >= max_attempts:
                    message = (
                        f"The run was interrupted {op.attempts} times (its worker died, stopped "
                        "heartbeating or stopped making progress); giving up."
                    )
                    finish(s, op, JobStatus.FAILED, ABORTED_CODE, message, now)
                else:
                    break
                s.flush()
            move(op, JobStatus.RUNNING)
            op.attempts += 1
            # A run starts by getting its base model (a first run converts it: see record_phase).
            op.phase, op.phase_progress = Phase.LOADING_BASE_MODEL.value, None
            op.lease_owner = worker_id
            op.lease_expires_at = now + dt.timedelta(seconds=lease_seconds)
            row = _model_row(s, op)
            if row.start_time is None:
                row.start_time = now
            s.flush()
            return ClaimedJob(
                operation_id=op.id,
                worker_id=worker_id,
                attempt=op.attempts,
                model=self._to_record(s, row),
                examples=_examples(op.training_data),
                method=row.method,
                total_steps=row.total_steps,
                completed_steps=row.completed_steps,
                validation_examples=_examples(op.validation_data),
                seed=op.seed,
            )

    def heartbeat(self, operation_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Renew the lease. Returns False when the job should stop (cancelled or lost)."""
        with write_session(self.engine) as s:
            op = _held(s, operation_id, worker_id)
            if op is None:
                return False
            op.lease_expires_at = self._now(s) + dt.timedelta(seconds=lease_seconds)
            return not _told_to_stop(op)

    def holds(self, operation_id: str, worker_id: str) -> bool:
        """Whether this worker still holds the job (its lease may have expired unnoticed)."""
        with self._sessions() as s:
            return _held(s, operation_id, worker_id) is not None

    def stop_reason(self, operation_id: str, worker_id: str) -> str:
        """Why a job's worker was told to stop: ``cancelled``, ``paused``, or ``lost`` (it no
        longer holds the job). A cancel wins over a pause."""
        with self._sessions() as s:
            op = _held(s, operation_id, worker_id)
            if op is None:
                return "lost"
            return "paused" if op.pause_requested and not op.cancel_requested else "cancelled"

    def pause(self, operation_id: str, worker_id: str) -> bool:
        """The worker stopped a job it was told to pause (after saving its checkpoint): it
        waits, PAUSED, until resumed. False if the worker no longer held it."""
        with write_session(self.engine) as s:
            op = _held(s, operation_id, worker_id)
            if op is None:
                return False
            move(op, JobStatus.PAUSED)
            _let_go(op)
            op.attempts = max(0, op.attempts - 1)  # a pause is not a failed attempt
            return True

    def record_phase(
        self, operation_id: str, worker_id: str, phase: Phase, progress: float | None = None
    ) -> bool:
        """Say what the run does before its first step (preparing or loading its base model),
        and how far it is (0 to 1, None when not measured).

        Returns False when the job should stop (cancel requested, or the lease was lost).
        """
        with write_session(self.engine) as s:
            op = _held(s, operation_id, worker_id)
            if op is None:
                return False
            op.phase, op.phase_progress = Phase(phase).value, progress
            return not _told_to_stop(op)

    def record_step(
        self,
        operation_id: str,
        worker_id: str,
        snapshot: TuningSnapshot,
        lease_seconds: float,
        validation_loss: float | None = None,
    ) -> bool:
        """Store one step's snapshot and renew the lease, in one transaction; with
        ``validation_loss`` (the step ended an epoch) that epoch's validation loss too.

        Returns False when the job should stop (cancel requested, or the lease was lost).
        """
        with write_session(self.engine) as s:
            op = _held(s, operation_id, worker_id)
            if op is None:
                return False
            s.merge(
                SnapshotRow(
                    tuned_model_id=op.tuned_model_id,
                    step=snapshot.step,
                    epoch=snapshot.epoch,
                    mean_loss=snapshot.mean_loss,
                    compute_time=snapshot.compute_time,
                )
            )
            if validation_loss is not None:
                s.merge(  # keyed by epoch: a step run again after a resume replaces its row
                    ValidationLossRow(
                        tuned_model_id=op.tuned_model_id,
                        epoch=snapshot.epoch,
                        step=snapshot.step,
                        mean_loss=validation_loss,
                        compute_time=snapshot.compute_time,
                    )
                )
            s.execute(
                update(TunedModelRow)
                .where(TunedModelRow.id == op.tuned_model_id)
                .values(completed_steps=snapshot.step)
            )
            op.lease_expires_at = self._now(s) + dt.timedelta(seconds=lease_seconds)
            op.phase = op.phase_progress = None  # the steps tell from here on
            return not _told_to_stop(op)

    def rewind(self, operation_id: str, worker_id: str, step: int) -> bool:
        """A resumed run restarts after ``step``: drop the snapshots (and validation losses)
        it will redo."""
        with write_session(self.engine) as s:
            op = _held(s, operation_id, worker_id)
            if op is None:
                return False
            for table in (SnapshotRow, ValidationLossRow):
                s.execute(
                    delete(table).where(
                        (table.tuned_model_id == op.tuned_model_id) & (table.step > step)
                    )
                )
            s.execute(
                update(TunedModelRow)
                .where(TunedModelRow.id == op.tuned_model_id)
                .values(completed_steps=step)
            )
            return True

    def give_up_lease(self, operation_id: str, worker_id: str) -> None:
        """The run hangs: let the lease lapse now so another worker retries it."""
        with write_session(self.engine) as s:
            op = _held(s, operation_id, worker_id)
            if op is not None:
                op.lease_expires_at = self._now(s) - dt.timedelta(seconds=1)

    def finish(
        self,
        operation_id: str,
        worker_id: str,
        status: JobStatus,
        *,
        adapter_path: str | None = None,
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> bool:
        """End a job this worker holds. Returns False if it no longer held it."""
        with write_session(self.engine) as s:
            op = _held(s, operation_id, worker_id)
            if op is None:
                return False
            if status is JobStatus.SUCCEEDED:
                _model_row(s, op).adapter_path = adapter_path
            finish(s, op, status, error_code, error_message, utcnow())
            return True

    def release(self, operation_id: str, worker_id: str) -> bool:
        """Give a running job back to the queue (its worker is shutting down)."""
        with write_session(self.engine) as s:
            op = _held(s, operation_id, worker_id)
            if op is None:
                return False
            move(op, JobStatus.QUEUED)
            _let_go(op)
            op.attempts = max(0, op.attempts - 1)  # a clean hand-back is not a failed attempt
            return True

    def request_cancel(self, model_id: str, operation_id: str) -> None:
        """A queued job (or one whose worker died) ends at once; a running one is told at its
        next step or heartbeat, within seconds."""
        with write_session(self.engine) as s:
            now = self._now(s)
            op = _operation(s, model_id, operation_id)
            status = JobStatus(op.status)
            if status.finished:
                return
            op.cancel_requested = True
            if status is not JobStatus.RUNNING or _lease_over(op, now):
                finish(s, op, JobStatus.CANCELLED, CANCELLED_CODE, CANCELLED_MESSAGE, now)

    def request_pause(self, model_id: str, operation_id: str) -> JobStatus:
        """Pause a job: a queued one (or one whose worker died) at once, a running one at its
        next step, which its worker checkpoints first. FailedPrecondition for a finished job.
        Returns the job's status now."""
        with write_session(self.engine) as s:
            op = _operation(s, model_id, operation_id)
            status = JobStatus(op.status)
            if status.finished:
                raise FailedPrecondition(f"the job is {status.value}; only a live job pauses")
            if status is JobStatus.PAUSED:
                return status
            if status is JobStatus.QUEUED or _lease_over(op, self._now(s)):
                move(op, JobStatus.PAUSED)
                _let_go(op)
                return JobStatus.PAUSED
            op.pause_requested = True
            return status

    def request_resume(self, model_id: str, operation_id: str) -> JobStatus:
        """A paused job goes back to the queue, in the place it had (its ``created_at``); a
        running job whose pause was asked for but not reached carries on. FailedPrecondition
        for a job that is not paused."""
        with write_session(self.engine) as s:
            op = _operation(s, model_id, operation_id)
            status = JobStatus(op.status)
            if status is JobStatus.PAUSED:
                move(op, JobStatus.QUEUED)
                op.pause_requested = False
                return JobStatus.QUEUED
            if status is JobStatus.RUNNING and op.pause_requested:
                op.pause_requested = False
                return status
            raise FailedPrecondition(f"the job is {status.value}, not paused")

    def claimable(self) -> int:
        """Jobs a worker could take now: queued, or running under an expired lease."""
        with self._sessions() as s:
            return s.scalar(
                select(func.count()).select_from(OperationRow).where(_runnable(self._now(s)))
            )

    def _now(self, s: Session) -> dt.datetime:
        """The time leases are measured in: the database server's clock on PostgreSQL (so
        workers on machines whose clocks disagree still agree on leases), else this one's."""
        if is_sqlite(self.url):
            return utcnow()
        now = as_utc(s.scalar(select(func.now())))
        assert now is not None  # now() is never NULL
        return now

    def live(self, operation_ids: list[str]) -> set[str]:
        """Those of ``operation_ids`` that are still queued, running or paused (whose
        checkpoints must stay)."""
        if not operation_ids:
            return set()
        with self._sessions() as s:
            rows = s.execute(
                select(OperationRow.id).where(
                    OperationRow.id.in_(operation_ids)
                    & OperationRow.status.in_([j.value for j in _LIVE])
                )
            )
            return {r[0] for r in rows}

    def unfinished(self) -> int:
        """Jobs queued or running (whatever their leases)."""
        with self._sessions() as s:
            return s.scalar(
                select(func.count())
                .select_from(OperationRow)
                .where(OperationRow.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
            )


def finish(s: Session, op: OperationRow, status: JobStatus, code, message, now) -> None:
    """Move a job to an end state and its tuned model to ACTIVE or FAILED, in one transaction."""
    move(op, status)
    op.finished_at = now
    _let_go(op)
    op.pause_requested = False
    op.error_code = code
    op.error_message = message
    row = _model_row(s, op)
    row.state = int(
        TunedModelState.ACTIVE if status is JobStatus.SUCCEEDED else TunedModelState.FAILED
    )
    row.error_message = None if status is JobStatus.SUCCEEDED else message
    row.complete_time = now
    row.update_time = now


def _let_go(op: OperationRow) -> None:
    """No worker holds the job any more."""
    op.lease_owner = None
    op.lease_expires_at = None
    op.phase = op.phase_progress = None


def _told_to_stop(op: OperationRow) -> bool:
    return bool(op.cancel_requested or op.pause_requested)


def _lease_over(op: OperationRow, now: dt.datetime) -> bool:
    lease = as_utc(op.lease_expires_at)
    return lease is None or lease < now


def _operation(s: Session, model_id: str, operation_id: str) -> OperationRow:
    op = s.get(OperationRow, operation_id)
    if op is None or op.tuned_model_id != model_id:
        raise NotFound(f"tunedModels/{model_id}/operations/{operation_id} not found")
    return op


def _runnable(now: dt.datetime):
    expired = (OperationRow.status == JobStatus.RUNNING.value) & (
        OperationRow.lease_expires_at < now
    )
    return (OperationRow.status == JobStatus.QUEUED.value) | expired


def examples_to_json(examples) -> str:
    """How a job's examples are stored: ``[[text_input, output], ...]``, a conversation as
    its JSON object (Google's ``contents`` shape) in the same list."""
    return json.dumps(
        [e.to_json() if isinstance(e, Conversation) else [e.text_input, e.output] for e in examples]
    )


def _examples(stored: str | None) -> list[TuningExample | Conversation]:
    return [
        Conversation.from_json(e) if isinstance(e, dict) else TuningExample(*e)
        for e in json.loads(stored or "[]")
    ]


def _model_row(s: Session, op: OperationRow) -> TunedModelRow:
    """The tuned model an operation belongs to (deleting a model deletes its operations)."""
    row = s.get(TunedModelRow, op.tuned_model_id)
    if row is None:
        raise NotFound(f"tunedModels/{op.tuned_model_id} is gone")
    return row


def _held(s: Session, operation_id: str, worker_id: str) -> OperationRow | None:
    op = s.get(OperationRow, operation_id)
    if op is None or op.lease_owner != worker_id or op.status != JobStatus.RUNNING.value:
        return None
    return op
