"""The store: every read and write of tuned models, operations and snapshots.

Methods take and return public records (:mod:`tunesmith.types`) or plain values. Rules
(validation, ids, permissions) are the service's; the store only keeps data consistent:
one transaction per call, and job claims that never hand one job to two workers.
"""

from __future__ import annotations

import base64
import dataclasses
import zlib

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from ..errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted
from ..records.conversations import Conversation
from ..types import (
    CreateTunedModelMetadata,
    Hyperparameters,
    OperationError,
    OperationRecord,
    Phase,
    RunPhase,
    TunedModel,
    TunedModelState,
    TuningExample,
    TuningSnapshot,
    TuningTask,
    ValidationLosses,
    as_utc,
)
from .db import make_engine, migrate, write_session
from .permissions import Visibility, visible_clause
from .queue import JobQueue, JobStatus, examples_to_json, finish, utcnow
from .tables import (
    FineTuningJobRow,
    OperationRow,
    SnapshotRow,
    TunedModelRow,
    ValidationLossRow,
)

INVALID_ARGUMENT_CODE = 3  # gRPC INVALID_ARGUMENT


@dataclasses.dataclass(frozen=True)
class StoredWeights:
    """A tuned model's weights: ``path`` (relative to the home: ``Settings.stored_path``; None
    while it is being tuned) is a peft adapter (``method`` "lora") or a whole model ("full").
    An adapter tuned over a fully tuned model sits on that model's weights, ``foundation``;
    None: on the base model."""

    path: str | None  # None until the run has finished
    method: str
    foundation: str | None = None

    @property
    def is_adapter(self) -> bool:
        return self.method == "lora"


@dataclasses.dataclass
class NewTuning:
    """Everything :meth:`Store.create_tuning` stores in one transaction."""

    model: TunedModel
    operation_id: str
    examples: list[TuningExample | Conversation]
    method: str
    total_steps: int
    owner: str | None = None
    validation_examples: list[TuningExample | Conversation] | None = None
    # At most this many jobs of ``owner`` queued or running, this one included (0: no limit).
    max_active_jobs: int = 0
    seed: int | None = None  # the run's seed (None: the worker's setting)
    fine_tuning: dict | None = None
    """The job's OpenAI fields (:class:`~.tables.FineTuningJobRow`'s columns but the id),
    stored with it when it was created as an OpenAI fine-tuning job."""
    failure: str | None = None
    """Store the job FAILED (INVALID_ARGUMENT) with this reason instead of queuing it: a check
    OpenAI makes after accepting a job (it is listed, with its error, like any other)."""


_PG_JOB_LIMIT_LOCK = 727_002  # advisory lock namespace: one owner's creates count in turn


class Store:
    def __init__(self, url: str, *, run_migrations: bool = True):
        self.url = url
        self.engine = make_engine(url)
        if run_migrations:
            migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.jobs = JobQueue(url, self.engine, self._sessions, self._record)

    def close(self) -> None:
        self.engine.dispose()

    # -- tuned models -------------------------------------------------------------------

    def create_tuning(self, new: NewTuning) -> OperationRecord:
        """Store a tuned model (CREATING) and its queued job, atomically."""
        m, hp = new.model, new.model.tuning_task.hyperparameters
        row = TunedModelRow(
            id=m.id,
            owner=new.owner,
            display_name=m.display_name,
            description=m.description,
            source_model=m.source_model,
            base_model=m.base_model,
            tuned_model_source=m.tuned_model_source,
            temperature=m.temperature,
            top_p=m.top_p,
            top_k=m.top_k,
            state=int(TunedModelState.CREATING),
            create_time=m.create_time,
            update_time=m.update_time,
            epoch_count=hp.epoch_count,
            batch_size=hp.batch_size,
            learning_rate=hp.learning_rate,
            learning_rate_multiplier=hp.learning_rate_multiplier,
            method=new.method,
            total_steps=new.total_steps,
            completed_steps=0,
        )
        op = OperationRow(
            id=new.operation_id,
            tuned_model_id=m.id,
            status=JobStatus.QUEUED.value,
            attempts=0,
            cancel_requested=False,
            created_at=m.create_time,
            training_data=examples_to_json(new.examples),
            validation_data=(
                None
                if new.validation_examples is None
                else examples_to_json(new.validation_examples)
            ),
            validation_count=len(new.validation_examples or ()),
            seed=new.seed,
        )
        try:
            with write_session(self.engine) as s:
                if new.owner is not None and new.max_active_jobs and new.failure is None:
                    _check_job_limit(s, new.owner, new.max_active_jobs)
                s.add(row)
                s.flush()
                s.add(op)
                if new.fine_tuning is not None:
                    s.add(FineTuningJobRow(tuned_model_id=m.id, **new.fine_tuning))
                if new.failure is not None:
                    s.flush()
                    finish(s, op, JobStatus.FAILED, INVALID_ARGUMENT_CODE, new.failure, utcnow())
        except IntegrityError:
            raise AlreadyExists(f"tunedModels/{m.id} already exists") from None
        return self.get_operation(m.id, new.operation_id)

    def import_tuned_model(
        self, model: TunedModel, owner: str | None, adapter_path: str
    ) -> TunedModel:
        """Store a tuned model trained elsewhere: ACTIVE at once, with no operation."""
        row = TunedModelRow(
            id=model.id,
            owner=owner,
            display_name=model.display_name,
            description=model.description,
            source_model=model.source_model,
            base_model=model.base_model,
            tuned_model_source=None,
            temperature=model.temperature,
            top_p=model.top_p,
            top_k=model.top_k,
            state=int(TunedModelState.ACTIVE),
            create_time=model.create_time,
            update_time=model.update_time,
            complete_time=model.create_time,
            epoch_count=0,
            batch_size=0,
            method="lora",
            total_steps=0,
            completed_steps=0,
            adapter_path=adapter_path,
        )
        try:
            with write_session(self.engine) as s:
                s.add(row)
        except IntegrityError:
            raise AlreadyExists(f"tunedModels/{model.id} already exists") from None
        return self.get_tuned_model(model.id)

    def get_tuned_model(self, model_id: str) -> TunedModel:
        with self._sessions() as s:
            row = self._row(s, model_id)
            return self._record(s, row)

    def fine_tuning_fields(self, model_id: str) -> dict:
        """What OpenAI's view of a tuned model's job shows beyond the tuned model: its
        ``method`` (lora/full), the newest operation's ``seed``, and the OpenAI fields it was
        created with (:class:`FineTuningJobRow`'s columns; absent for a job made otherwise)."""
        with self._sessions() as s:
            model = self._row(s, model_id)
            seed = s.scalar(
                select(OperationRow.seed)
                .where(OperationRow.tuned_model_id == model_id)
                .order_by(OperationRow.created_at.desc())
                .limit(1)
            )
            fields = {"method": model.method, "seed": seed}
            row = s.get(FineTuningJobRow, model_id)
            if row is not None:
                fields.update(
                    (c.name, getattr(row, c.name))
                    for c in FineTuningJobRow.__table__.columns
                    if c.name != "tuned_model_id"
                )
            return fields

    def tuned_model_owner(self, model_id: str) -> str | None:
        with self._sessions() as s:
            row = s.get(TunedModelRow, model_id)
            if row is None:
                raise NotFound(f"tunedModels/{model_id} not found")
            return row.owner

    def weights(self, model_id: str) -> StoredWeights | None:
        """Where a tuned model's weights are and what they are (its checkpoints, while it is
        tuned, are of the same kind over the same foundation); None for no such model."""
        with self._sessions() as s:
            row = s.get(TunedModelRow, model_id)
            if row is None:
                return None
            foundation, child, seen = None, row, {row.id}
            # An adapter continues its parent's adapter over the same weights: walk up to a
            # fully tuned ancestor, if there is one (else the adapter sits on the base model).
            while child.method == "lora" and child.tuned_model_source:
                parent_id = child.tuned_model_source.removeprefix("tunedModels/")
                parent = s.get(TunedModelRow, parent_id)
                if parent is None or parent_id in seen:
                    break
                if parent.method == "full":
                    foundation = parent.adapter_path
                seen.add(parent_id)
                child = parent
            return StoredWeights(row.adapter_path or None, row.method, foundation)

    def list_tuned_models(
        self,
        visible: Visibility | None,
        page_size: int,
        page_token: str | None = None,
        text: str | None = None,
        base_model: str | None = None,
    ) -> tuple[list[TunedModel], str | None]:
        offset = _decode_token(page_token)
        with self._sessions() as s:
            q = select(TunedModelRow)
            if visible is not None:
                q = q.where(visible_clause(visible))
            if base_model is not None:
                q = q.where(TunedModelRow.base_model == base_model)
            for word in (text or "").split():
                pattern = f"%{word.lower()}%"
                q = q.where(
                    or_(
                        func.lower(TunedModelRow.display_name).like(pattern),
                        func.lower(TunedModelRow.description).like(pattern),
                    )
                )
            q = q.order_by(TunedModelRow.create_time, TunedModelRow.id)
            rows = s.scalars(q.offset(offset).limit(page_size + 1)).all()
            more = len(rows) > page_size
            models = [self._record(s, r) for r in rows[:page_size]]
        return models, (_encode_token(offset + page_size) if more else None)

    def update_tuned_model(self, model_id: str, fields: dict) -> TunedModel:
        """Set plain columns (display_name, description, temperature, top_p, top_k)."""
        with write_session(self.engine) as s:
            row = self._row(s, model_id)
            for key, value in fields.items():
                setattr(row, key, value)
            row.update_time = utcnow()
        return self.get_tuned_model(model_id)

    def delete_tuned_model(self, model_id: str) -> str | None:
        """Delete the model, its operation and snapshots; returns its adapter path."""
        with write_session(self.engine) as s:
            row = self._row(s, model_id)
            path = row.adapter_path
            for table in (SnapshotRow, ValidationLossRow):
                s.execute(delete(table).where(table.tuned_model_id == model_id))
            s.execute(delete(OperationRow).where(OperationRow.tuned_model_id == model_id))
            s.delete(row)
        return path

    # -- operations ---------------------------------------------------------------------

    def get_operation(self, model_id: str, operation_id: str) -> OperationRecord:
        with self._sessions() as s:
            op = s.get(OperationRow, operation_id)
            if op is None or op.tuned_model_id != model_id:
                raise NotFound(f"tunedModels/{model_id}/operations/{operation_id} not found")
            row = self._row(s, model_id)
            return self._operation(s, op, row)

    def operation_done(self, model_id: str, operation_id: str) -> bool:
        """Whether the operation has ended: one column of one row, cheap enough to ask often
        (:meth:`get_operation` reads every snapshot)."""
        with self._sessions() as s:
            status = s.scalar(
                select(OperationRow.status).where(
                    OperationRow.id == operation_id, OperationRow.tuned_model_id == model_id
                )
            )
        if status is None:
            raise NotFound(f"tunedModels/{model_id}/operations/{operation_id} not found")
        return JobStatus(status).finished

    def list_operations(self, model_id: str) -> list[OperationRecord]:
        with self._sessions() as s:
            row = self._row(s, model_id)
            ops = s.scalars(
                select(OperationRow).where(OperationRow.tuned_model_id == model_id)
            ).all()
            return [self._operation(s, op, row) for op in ops]

    def find_operations(self, visible: Visibility | None = None) -> list[OperationRecord]:
        """Every operation (of the models ``visible`` shows), oldest first."""
        with self._sessions() as s:
            q = select(OperationRow, TunedModelRow).join(
                TunedModelRow, TunedModelRow.id == OperationRow.tuned_model_id
            )
            if visible is not None:
                q = q.where(visible_clause(visible))
            q = q.order_by(OperationRow.created_at, OperationRow.id)
            return [self._operation(s, op, row) for op, row in s.execute(q).all()]

    def validation_losses(self, model_id: str) -> ValidationLosses:
        """How many validation examples the model's tuning has, and their loss per epoch."""
        with self._sessions() as s:
            self._row(s, model_id)
            count = s.scalar(
                select(func.coalesce(func.max(OperationRow.validation_count), 0)).where(
                    OperationRow.tuned_model_id == model_id
                )
            )
            losses = self._snapshots(s, model_id, ValidationLossRow)
        return ValidationLosses(example_count=count or 0, losses=losses)

    def request_cancel(self, model_id: str, operation_id: str) -> None:
        """A queued job ends at once; a running one is told at its next step or heartbeat."""
        with self._sessions() as s:
            self._row(s, model_id)
        self.jobs.request_cancel(model_id, operation_id)

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _row(s, model_id: str) -> TunedModelRow:
        # Who may see it is the service's rule (service/access.py), not the store's.
        row = s.get(TunedModelRow, model_id)
        if row is None:
            raise NotFound(f"tunedModels/{model_id} not found")
        return row

    def _snapshots(self, s, model_id: str, table=SnapshotRow) -> list[TuningSnapshot]:
        """The training snapshots, or (``table=ValidationLossRow``) the validation losses."""
        rows = s.scalars(
            select(table).where(table.tuned_model_id == model_id).order_by(table.step)
        ).all()
        return [TuningSnapshot(r.step, r.epoch, r.mean_loss, as_utc(r.compute_time)) for r in rows]

    def _record(self, s, row: TunedModelRow, snapshots=None) -> TunedModel:
        return TunedModel(
            name=f"tunedModels/{row.id}",
            source_model=row.source_model,
            base_model=row.base_model,
            tuned_model_source=row.tuned_model_source,
            display_name=row.display_name,
            description=row.description,
            temperature=row.temperature,
            top_p=row.top_p,
            top_k=row.top_k,
            state=TunedModelState(row.state),
            create_time=as_utc(row.create_time),
            update_time=as_utc(row.update_time),
            tuning_task=TuningTask(
                start_time=as_utc(row.start_time),
                complete_time=as_utc(row.complete_time),
                snapshots=snapshots if snapshots is not None else self._snapshots(s, row.id),
                hyperparameters=Hyperparameters(
                    epoch_count=row.epoch_count,
                    batch_size=row.batch_size,
                    learning_rate=row.learning_rate,
                    learning_rate_multiplier=row.learning_rate_multiplier,
                ),
            ),
            error=row.error_message,
            method=row.method,
        )

    def _operation(self, s, op: OperationRow, row: TunedModelRow) -> OperationRecord:
        snapshots = self._snapshots(s, row.id)
        status = JobStatus(op.status)
        done_steps = row.total_steps if status is JobStatus.SUCCEEDED else row.completed_steps
        meta = CreateTunedModelMetadata(
            tuned_model=f"tunedModels/{row.id}",
            total_steps=row.total_steps,
            completed_steps=done_steps,
            completed_percent=100.0 * done_steps / max(1, row.total_steps),
            snapshots=snapshots,
            phase=_phase(op, status),
        )
        record = OperationRecord(
            name=f"tunedModels/{row.id}/operations/{op.id}", metadata=meta, done=status.finished
        )
        if status is JobStatus.SUCCEEDED:
            record.response = self._record(s, row, snapshots)
        elif status.finished:
            record.error = OperationError(op.error_code or 13, op.error_message or "failed")
        return record


def _phase(op: OperationRow, status: JobStatus) -> RunPhase | None:
    """What an unfinished run is doing: queued, its stored phase before the first step
    (cleared by the first step's snapshot), else tuning."""
    if status is JobStatus.QUEUED:
        return RunPhase(Phase.QUEUED)
    if status is JobStatus.RUNNING:
        return RunPhase(op.phase or Phase.TUNING, op.phase_progress)
    if status is JobStatus.PAUSED:
        return RunPhase(Phase.PAUSED)
    return None


def _check_job_limit(s, owner: str, limit: int) -> None:
    """Refuse a new job when ``owner`` already has ``limit`` queued or running.

    Runs inside the transaction that adds the job, so the count and the insert are one step:
    SQLite's write transaction holds the database lock from ``BEGIN IMMEDIATE``; on
    PostgreSQL a lock per owner, held until commit, makes racing creates of one owner count
    one after the other (each count then sees the jobs committed before it).
    """
    if s.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(owner.encode()) - 2**31  # into PostgreSQL's int4
        s.execute(
            text("SELECT pg_advisory_xact_lock(CAST(:ns AS integer), CAST(:key AS integer))"),
            {"ns": _PG_JOB_LIMIT_LOCK, "key": key},
        )
    active = s.scalar(
        select(func.count())
        .select_from(OperationRow)
        .join(TunedModelRow, TunedModelRow.id == OperationRow.tuned_model_id)
        .where(
            TunedModelRow.owner == owner,
            OperationRow.status.in_((JobStatus.QUEUED.value, JobStatus.RUNNING.value)),
        )
    )
    if active >= limit:
        raise ResourceExhausted(
            f"{owner} has {active} tuning jobs queued or running, the limit per user "
            f"(TUNESMITH_MAX_JOBS_PER_USER={limit}); wait for one to finish or cancel one"
        )


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not raw.startswith("o:"):
            raise ValueError
        return max(0, int(raw[2:]))
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(f"page_token: '{token}' is not a token this server gave") from None
