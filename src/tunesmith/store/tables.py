"""ORM rows. They never leave :mod:`tunesmith.store`: the store returns public records."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column


class Base(DeclarativeBase):
    pass


class TunedModelRow(Base):
    __tablename__ = "tuned_models"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    display_name: Mapped[str] = mapped_column(String(40), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    source_model: Mapped[str] = mapped_column(String(512))
    base_model: Mapped[str] = mapped_column(String(512))
    tuned_model_source: Mapped[str | None] = mapped_column(String(64))
    temperature: Mapped[float | None] = mapped_column(Float)
    top_p: Mapped[float | None] = mapped_column(Float)
    top_k: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[int] = mapped_column(Integer)
    create_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    start_time: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    complete_time: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    epoch_count: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    learning_rate_multiplier: Mapped[float | None] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(16), default="lora")
    total_steps: Mapped[int] = mapped_column(Integer)
    completed_steps: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str | None] = mapped_column(Text)
    # Relative to TUNESMITH_HOME, chosen by the store (never built from user text).
    adapter_path: Mapped[str | None] = mapped_column(String(256))


class OperationRow(Base):
    """A tuning job: the long-running operation and its place in the queue."""

    __tablename__ = "operations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tuned_model_id: Mapped[str] = mapped_column(
        ForeignKey("tuned_models.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))  # see jobs.JobStatus
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    # JSON list of [text_input, output]; loaded only by the worker that runs the job.
    training_data: Mapped[str] = deferred(mapped_column(Text))
    # tunesmith's own held-out set, the same JSON form; None when the job has none.
    validation_data: Mapped[str | None] = deferred(mapped_column(Text))
    validation_count: Mapped[int] = mapped_column(Integer, default=0)
    # What a running job does before its first step (see tunesmith.types.Phase); NULL after.
    phase: Mapped[str | None] = mapped_column(String(32))
    phase_progress: Mapped[float | None] = mapped_column(Float)
    # A pause asked for while a worker runs the job; it checkpoints and moves it to PAUSED.
    pause_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # The run's seed when the job was given one (OpenAI's ``seed``); NULL: the worker's.
    seed: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_operations_status_created", "status", "created_at"),)


class SnapshotRow(Base):
    __tablename__ = "snapshots"

    tuned_model_id: Mapped[str] = mapped_column(
        ForeignKey("tuned_models.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)
    mean_loss: Mapped[float] = mapped_column(Float)
    compute_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ValidationLossRow(Base):
    """The mean loss over a job's validation examples after a step that ended an epoch."""

    __tablename__ = "validation_losses"

    tuned_model_id: Mapped[str] = mapped_column(
        ForeignKey("tuned_models.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    step: Mapped[int] = mapped_column(Integer)
    mean_loss: Mapped[float] = mapped_column(Float)
    compute_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class FineTuningJobRow(Base):
    """What OpenAI's fine-tuning job adds to the tuning job it is (``ftjob-ID`` is the tuned
    model ``ID`` and its operation): the files it came from, its suffix and metadata, and the
    OpenAI error code of a job that failed a check made after it was accepted."""

    __tablename__ = "fine_tuning_jobs"

    tuned_model_id: Mapped[str] = mapped_column(
        ForeignKey("tuned_models.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(512))  # the model named at creation
    training_file: Mapped[str] = mapped_column(String(40))
    validation_file: Mapped[str | None] = mapped_column(String(40))
    suffix: Mapped[str | None] = mapped_column(String(64))
    metadata_json: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_param: Mapped[str | None] = mapped_column(String(64))
