"""OpenAI's fine-tuning jobs: a second view of the same tuning jobs and tuned models.

A job ``ftjob-ID`` is tuned model ``tunedModels/ID`` and its operation: creating one is
:meth:`TuningService.create_tuned_model` (with OpenAI's fields kept beside it), reading one
reads the operation, cancelling, pausing and resuming are the operation's. A job made from
Google's dialect is listed here too, and a job made here is a tuned model Google's dialect,
the CLI and the console list. Its ``fine_tuned_model`` (``ft:BASE:OWNER:SUFFIX:ftjob-ID``)
is :func:`.model_names.fine_tuned_model_name`.

OpenAI's defaults ("auto"): ``n_epochs`` 3, raised or lowered so the examples seen (examples
times epochs) stay within 100 to 25,000, and 1 to 25 epochs; ``batch_size`` tunesmith's
default (4); ``learning_rate_multiplier`` 1 (the method's own rate). A training set of fewer
than :data:`MIN_EXAMPLES` is accepted and the job then fails with ``invalid_n_examples``, as
OpenAI's does.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import json
import math
from collections.abc import Mapping

from ..engine import steps
from ..errors import InvalidArgument, NotFound
from ..records.tuning import CreateTunedModelRequest
from ..types import OperationRecord, TunedModel
from . import model_names
from .access import Caller
from .files import FileService
from .tuning import DEFAULT_BATCH_SIZE, TuningService

MIN_EXAMPLES = 10
AUTO_EPOCHS = 3
MIN_EXAMPLES_SEEN, MAX_EXAMPLES_SEEN = 100, 25_000
MAX_AUTO_EPOCHS = 25
MAX_SUFFIX = 40  # the tuned model's display name, which the suffix becomes
MAX_METADATA = 16  # OpenAI's: 16 pairs, keys up to 64 characters, values up to 512
CANCELLED_CODE = 1


@dataclasses.dataclass
class FineTuningRequest:
    """A create request as OpenAI's client sends it (values unchecked: :meth:`create` does)."""

    model: object
    training_file: object
    validation_file: object = None
    suffix: object = None
    seed: object = None
    metadata: object = None
    method: object = None
    hyperparameters: object = None  # the legacy top-level form of method's


@dataclasses.dataclass(frozen=True)
class FineTuningJob:
    id: str
    operation: str  # tunedModels/ID/operations/OP: the same job in Google's dialect
    tuned_model: str  # tunedModels/ID
    created_at: int
    finished_at: int | None
    model: str  # the base model's short name (or the tuned model it continued)
    fine_tuned_model: str | None  # ft:... once succeeded
    owner: str | None
    status: str  # queued, running, paused, succeeded, failed, cancelled
    training_file: str | None
    validation_file: str | None
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    error: dict | None  # {"code", "message", "param"} of a failed job
    seed: int | None
    suffix: str | None
    metadata: dict | None
    trained_steps: int
    total_steps: int


@dataclasses.dataclass(frozen=True)
class JobEvent:
    id: str
    created_at: int
    level: str  # info | warn | error
    message: str
    type: str  # message | metrics
    data: dict | None = None


@dataclasses.dataclass(frozen=True)
class JobCheckpoint:
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str  # FT_MODEL:ckpt-step-N
    fine_tuning_job_id: str
    step_number: int
    metrics: dict


def auto_epochs(n_examples: int) -> int:
    """OpenAI's "auto" epochs: 3, moved so examples seen stay within 100 to 25,000."""
    n = max(1, n_examples)
    epochs = AUTO_EPOCHS
    if n * epochs < MIN_EXAMPLES_SEEN:
        epochs = min(MAX_AUTO_EPOCHS, math.ceil(MIN_EXAMPLES_SEEN / n))
    elif n * epochs > MAX_EXAMPLES_SEEN:
        epochs = max(1, MAX_EXAMPLES_SEEN // n)
    return epochs


class FineTuningService:
    def __init__(self, tuning: TuningService, files: FileService, directory):
        self.tuning, self.files, self.directory = tuning, files, directory
        self.store = tuning.store

    # -- create -------------------------------------------------------------------------

    def create(self, req: FineTuningRequest, caller: Caller | str | None = None) -> FineTuningJob:
        hp = _hyperparameters(req.method, req.hyperparameters)
        source = _source(req.model)
        suffix = _optional_text("suffix", req.suffix, MAX_SUFFIX)
        metadata = _metadata(req.metadata)
        training_file = _file_id("training_file", req.training_file)
        validation_file = (
            None
            if req.validation_file is None
            else _file_id("validation_file", req.validation_file)
        )
        examples = self._examples(training_file, caller, "training_file")
        held_out = (
            None
            if validation_file is None
            else self._examples(validation_file, caller, "validation_file")
        )
        epochs = hp["n_epochs"]
        if epochs == "auto":
            epochs = auto_epochs(len(examples))
        batch = DEFAULT_BATCH_SIZE if hp["batch_size"] == "auto" else hp["batch_size"]
        mult = None if hp["learning_rate_multiplier"] == "auto" else hp["learning_rate_multiplier"]
        failure = error_code = None
        if len(examples) < MIN_EXAMPLES:
            failure = (
                f"training_file: {training_file} has {len(examples)} example(s); "
                f"at least {MIN_EXAMPLES} are needed"
            )
            error_code = "invalid_n_examples"
        op = self.tuning.create_tuned_model(
            CreateTunedModelRequest(
                source_model=source,
                examples=examples,
                display_name=suffix,
                epoch_count=epochs,
                batch_size=batch,
                learning_rate_multiplier=mult,
                validation_examples=held_out,
                seed=req.seed,  # type: ignore[arg-type]  # checked by create_tuned_model
            ),
            caller,
            fine_tuning={
                "model": req.model,
                "training_file": training_file,
                "validation_file": validation_file,
                "suffix": suffix,
                "metadata_json": None if metadata is None else json.dumps(metadata),
                "error_code": error_code,
                "error_param": "training_file" if error_code else None,
            },
            failure=failure,
        )
        return self._job(op)

    def _examples(self, file_id: str, caller, field: str):
        try:
            return self.files.examples(file_id, caller, field)
        except NotFound:
            raise InvalidArgument(f"{field}: no file {file_id!r} (upload it to /files)") from None

    # -- read ---------------------------------------------------------------------------

    def list(
        self, caller: Caller | str | None = None, metadata: Mapping[str, str] | None = None
    ) -> builtins.list[FineTuningJob]:
        """Every job the caller may see, newest first; with ``metadata``, those whose
        metadata holds every pair."""
        jobs = [self._job(op) for op in reversed(self.tuning.list_operations(None, caller))]
        if metadata:
            jobs = [
                j
                for j in jobs
                if j.metadata and all(j.metadata.get(k) == v for k, v in metadata.items())
            ]
        return jobs

    def get(self, job_id: str, caller: Caller | str | None = None) -> FineTuningJob:
        return self._job(self._operation(job_id, caller))

    def events(self, job_id: str, caller: Caller | str | None = None) -> builtins.list[JobEvent]:
        """What happened to the job, newest first: created, validating, started, one metrics
        event per step (``train_loss``; ``valid_loss`` at each epoch's end), and how it
        ended."""
        op = self._operation(job_id, caller)
        job = self._job(op)
        model = self.tuning.get_tuned_model(job.tuned_model, caller)
        valid = {
            v.step: v.mean_loss
            for v in self.tuning.get_validation_losses(job.tuned_model, caller).losses
        }
        task = model.tuning_task
        created = _unix(model.create_time)
        events = [
            JobEvent(
                f"{job.id}-created",
                created,
                "info",
                f"Created fine-tuning job: {job.id}",
                "message",
            ),
            JobEvent(
                f"{job.id}-validating",
                created,
                "info",
                f"Validating training file: {job.training_file}"
                if job.training_file
                else "Validating training data",
                "message",
            ),
        ]
        if task.start_time is not None:
            events.append(
                JobEvent(
                    f"{job.id}-started",
                    _unix(task.start_time),
                    "info",
                    "Fine-tuning job started",
                    "message",
                )
            )
        for snap in task.snapshots:
            data = {"step": snap.step, "total_steps": job.total_steps, "train_loss": snap.mean_loss}
            message = f"Step {snap.step}/{job.total_steps}: training loss={snap.mean_loss:.4f}"
            if snap.step in valid:
                data["valid_loss"] = valid[snap.step]
                message += f", validation loss={valid[snap.step]:.4f}"
            events.append(
                JobEvent(
                    f"{job.id}-step-{snap.step}",
                    _unix(snap.compute_time),
                    "info",
                    message,
                    "metrics",
                    data,
                )
            )
        if job.status == "paused":
            events.append(
                JobEvent(
                    f"{job.id}-paused",
                    _unix(model.update_time),
                    "info",
                    "Fine-tuning job paused",
                    "message",
                )
            )
        ended = job.finished_at or _unix(model.update_time)
        if job.status == "succeeded":
            events.append(
                JobEvent(
                    f"{job.id}-succeeded",
                    ended,
                    "info",
                    f"The job has successfully completed: {job.fine_tuned_model}",
                    "message",
                )
            )
        elif job.status == "failed":
            reason = job.error["message"] if job.error else "unknown"
            events.append(
                JobEvent(
                    f"{job.id}-failed",
                    ended,
                    "error",
                    f"Fine-tuning job failed: {reason}",
                    "message",
                )
            )
        elif job.status == "cancelled":
            events.append(
                JobEvent(
                    f"{job.id}-cancelled", ended, "info", "Fine-tuning job cancelled", "message"
                )
            )
        return events[::-1]

    def checkpoints(
        self, job_id: str, caller: Caller | str | None = None
    ) -> builtins.list[JobCheckpoint]:
        """The kept checkpoints (one at each epoch's end), newest first; each is a model name
        generation takes (``FT_MODEL:ckpt-step-N``)."""
        op = self._operation(job_id, caller)
        job = self._job(op)
        model = self.tuning.get_tuned_model(job.tuned_model, caller)
        losses = {s.step: s.mean_loss for s in model.tuning_task.snapshots}
        valid = {
            v.step: v.mean_loss
            for v in self.tuning.get_validation_losses(job.tuned_model, caller).losses
        }
        folder = self.tuning.settings.served_checkpoint_dir(model.id)
        found = []
        for path in folder.glob("step-*") if folder.is_dir() else ():
            digits = path.name.removeprefix("step-")
            if not digits.isdigit() or not path.is_dir():
                continue  # a folder being written (step-N.part)
            step = int(digits)
            metrics: dict[str, float] = {"step": step}
            if step in losses:
                metrics["train_loss"] = losses[step]
            if step in valid:
                metrics["valid_loss"] = valid[step]
            found.append(
                JobCheckpoint(
                    f"ftckpt-{model.id}-{step}",
                    int(path.stat().st_mtime),
                    model_names.checkpoint_name(self._ft_name(model), step),
                    job.id,
                    step,
                    metrics,
                )
            )
        return sorted(found, key=lambda c: c.step_number, reverse=True)

    # -- change -------------------------------------------------------------------------

    def cancel(self, job_id: str, caller: Caller | str | None = None) -> FineTuningJob:
        op = self._operation(job_id, caller)
        return self._job(self.tuning.cancel_operation(op.name, caller))

    def pause(self, job_id: str, caller: Caller | str | None = None) -> FineTuningJob:
        op = self._operation(job_id, caller)
        return self._job(self.tuning.pause_operation(op.name, caller))

    def resume(self, job_id: str, caller: Caller | str | None = None) -> FineTuningJob:
        op = self._operation(job_id, caller)
        return self._job(self.tuning.resume_operation(op.name, caller))

    # -- helpers ------------------------------------------------------------------------

    def _operation(self, job_id: str, caller) -> OperationRecord:
        model_id = model_names.tuned_model_of_job(job_id)
        try:
            ops = self.tuning.list_operations(f"tunedModels/{model_id}", caller)
        except NotFound:
            raise NotFound(f"fine-tuning job {job_id!r} not found") from None
        if not ops:
            raise NotFound(f"fine-tuning job {job_id!r} not found (an imported model has none)")
        return ops[-1]

    def _ft_name(self, model: TunedModel) -> str:
        return self.directory.named(model).id

    def _job(self, op: OperationRecord) -> FineTuningJob:
        model_id = op.metadata.tuned_model.removeprefix("tunedModels/")
        model = self.store.get_tuned_model(model_id)
        fields = self.store.fine_tuning_fields(model_id)
        owner = self.store.tuned_model_owner(model_id)
        phase = op.metadata.phase.name if op.metadata.phase else None
        error = None
        if not op.done:
            status = {"QUEUED": "queued", "PAUSED": "paused"}.get(phase or "", "running")
        elif op.error is None:
            status = "succeeded"
        elif op.error.code == CANCELLED_CODE:
            status = "cancelled"
        else:
            status = "failed"
            error = {
                "code": fields.get("error_code") or "failed",
                "message": op.error.message,
                "param": fields.get("error_param"),
            }
        hp = model.tuning_task.hyperparameters
        mult = hp.learning_rate_multiplier
        if mult is None:
            default = steps.peak_learning_rate(fields["method"], None, None)
            mult = (hp.learning_rate / default) if hp.learning_rate and default else 1.0
        metadata = json.loads(fields["metadata_json"]) if fields.get("metadata_json") else None
        done_at = model.tuning_task.complete_time if op.done else None
        return FineTuningJob(
            id=model_names.job_id(model_id),
            operation=op.name,
            tuned_model=model.name,
            created_at=_unix(model.create_time),
            finished_at=None if done_at is None else _unix(done_at),
            model=fields.get("model")
            or (model.tuned_model_source or model.base_model).removeprefix("models/"),
            fine_tuned_model=self._ft_name(model) if status == "succeeded" else None,
            owner=owner,
            status=status,
            training_file=fields.get("training_file"),
            validation_file=fields.get("validation_file"),
            n_epochs=hp.epoch_count or 0,
            batch_size=hp.batch_size or 0,
            learning_rate_multiplier=float(mult),
            error=error,
            seed=fields["seed"],
            suffix=fields.get("suffix"),
            metadata=metadata,
            trained_steps=op.metadata.completed_steps,
            total_steps=op.metadata.total_steps,
        )


def _unix(t: dt.datetime | None) -> int:
    return int(t.timestamp()) if t is not None else 0


def _source(model) -> str:
    if not isinstance(model, str) or not model.strip():
        raise InvalidArgument("model: the base model (or a fine-tuned model) to tune is required")
    try:
        ref = model_names.parse(model)
    except NotFound as e:
        raise InvalidArgument(f"model: {e.message}") from None
    if ref.checkpoint_step is not None:
        raise InvalidArgument(f"model: {model} is a checkpoint; tune from its model instead")
    source = ref.tuned_model or ref.base
    assert source is not None  # parse names a base or a tuned model
    return source


def _file_id(field: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{field}: a file id (file-...) from /files is required")
    return value


def _optional_text(field: str, value, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{field}: must be text, not {type(value).__name__}")
    if len(value) > limit:
        raise InvalidArgument(f"{field}: {len(value)} characters, over the limit of {limit}")
    return value or None


def _metadata(value) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgument("metadata: must be an object of string keys and values")
    if len(value) > MAX_METADATA:
        raise InvalidArgument(f"metadata: {len(value)} pairs, over the limit of {MAX_METADATA}")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str) or len(k) > 64 or len(v) > 512:
            raise InvalidArgument(
                f"metadata: {k!r} must be a string key (up to 64 characters) with a string "
                "value (up to 512)"
            )
    return dict(value)


def _hyperparameters(method, legacy) -> dict:
    """n_epochs, batch_size, learning_rate_multiplier, each "auto" or a number, from
    ``method`` (``{"type": "supervised", "supervised": {"hyperparameters": {...}}}``) or the
    legacy top-level ``hyperparameters``; other methods (dpo, reinforcement) are refused."""
    given = None
    if method is not None:
        if not isinstance(method, Mapping):
            raise InvalidArgument("method: must be an object with 'type'")
        kind = method.get("type")
        if kind != "supervised":
            raise InvalidArgument(
                f"method.type: {kind!r} is not supported; tunesmith tunes with supervised "
                "fine-tuning only (dpo and reinforcement need preference or reward data and "
                "training loops it does not have)"
            )
        inner = method.get("supervised") or {}
        if not isinstance(inner, Mapping):
            raise InvalidArgument("method.supervised: must be an object")
        given = inner.get("hyperparameters")
        where = "method.supervised.hyperparameters"
    if legacy is not None:
        if given is not None:
            raise InvalidArgument(
                "hyperparameters: give them in method.supervised.hyperparameters or at the "
                "top level, not both"
            )
        given, where = legacy, "hyperparameters"
    given = given or {}
    if not isinstance(given, Mapping):
        raise InvalidArgument(f"{where}: must be an object")
    known = ("n_epochs", "batch_size", "learning_rate_multiplier")
    unknown = [k for k in given if k not in known]
    if unknown:
        raise InvalidArgument(f"{where}.{unknown[0]}: unknown (known: {', '.join(known)})")
    out = {}
    for key in known:
        value = given.get(key, "auto")
        if value is None:
            value = "auto"
        if value != "auto":
            number = key == "learning_rate_multiplier"
            ok = (
                isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
                if number
                else isinstance(value, int) and not isinstance(value, bool) and value >= 1
            )
            if not ok:
                kind = "a number above 0" if number else "a whole number from 1"
                raise InvalidArgument(f'{where}.{key}: {value!r} must be "auto" or {kind}')
        out[key] = value
    return out
