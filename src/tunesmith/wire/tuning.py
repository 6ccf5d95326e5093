"""Proto-JSON of tuned models, the create / update requests, and tuning operations."""

from __future__ import annotations

from typing import Any

from .. import data
from ..errors import InvalidArgument
from ..records.conversations import Conversation
from ..records.tuning import CreateTunedModelRequest
from ..types import (
    CreateTunedModelMetadata,
    Hyperparameters,
    OperationError,
    OperationRecord,
    RunPhase,
    TunedModel,
    TuningExample,
    TuningSnapshot,
    TuningTask,
    ValidationLosses,
)
from ._base import (
    camel,
    compact,
    duration,
    json_object,
    model_state,
    parse_duration,
    parse_timestamp,
    proto_float,
    proto_int,
    snake,
    snake_keys,
    timestamp,
)


def type_url(message: str, version: str = "v1beta") -> str:
    """The ``@type`` of a Generative Language message in the API version the caller speaks
    (``v1beta``, ``v1beta3`` or ``v1``: the path prefix the request came in on)."""
    return f"type.googleapis.com/google.ai.generativelanguage.{version}.{message}"


# -- tuned models ------------------------------------------------------------------------


def snapshot_to_json(s: TuningSnapshot) -> dict:
    return {
        "step": s.step,
        "epoch": s.epoch,
        "meanLoss": s.mean_loss,
        "computeTime": timestamp(s.compute_time),
    }


def snapshot_from_json(d: dict) -> TuningSnapshot:
    d = snake_keys(d)
    return TuningSnapshot(
        step=int(d.get("step", 0)),
        epoch=int(d.get("epoch", 0)),
        mean_loss=float(d.get("mean_loss", 0.0)),
        compute_time=parse_timestamp(d.get("compute_time")),
    )


def tuned_model_to_json(m: TunedModel) -> dict:
    hp = m.tuning_task.hyperparameters
    task = compact(
        {
            "startTime": timestamp(m.tuning_task.start_time),
            "completeTime": timestamp(m.tuning_task.complete_time),
            "snapshots": [snapshot_to_json(s) for s in m.tuning_task.snapshots] or None,
            # learningRateMultiplier is never written: the old SDK crashes on it.
            "hyperparameters": compact(
                {
                    "epochCount": hp.epoch_count,
                    "batchSize": hp.batch_size,
                    "learningRate": hp.learning_rate,
                }
            ),
        }
    )
    out: dict[str, Any] = {"name": m.name}
    # base_model and tuned_model_source are one proto oneof: write exactly one of them.
    if m.tuned_model_source:
        out["tunedModelSource"] = {"tunedModel": m.tuned_model_source, "baseModel": m.base_model}
    else:
        out["baseModel"] = m.base_model
    out.update(
        compact(
            {
                "displayName": m.display_name,
                "description": m.description,
                "temperature": m.temperature,
                "topP": m.top_p,
                "topK": m.top_k,
                "state": m.state.name,
                "createTime": timestamp(m.create_time),
                "updateTime": timestamp(m.update_time),
                "tuningTask": task,
            }
        )
    )
    return out


def tuned_model_from_json(d: dict) -> TunedModel:
    d = snake_keys(d)
    task = d.get("tuning_task") or {}
    hp = task.get("hyperparameters") or {}
    source = d.get("tuned_model_source") or {}
    base = source.get("base_model") or d.get("base_model") or ""
    return TunedModel(
        name=d.get("name", ""),
        source_model=source.get("tuned_model") or base,
        base_model=base,
        tuned_model_source=source.get("tuned_model"),
        display_name=d.get("display_name", ""),
        description=d.get("description", ""),
        temperature=d.get("temperature"),
        top_p=d.get("top_p"),
        top_k=d.get("top_k"),
        state=model_state(d.get("state")),
        create_time=parse_timestamp(d.get("create_time")),
        update_time=parse_timestamp(d.get("update_time")),
        tuning_task=TuningTask(
            start_time=parse_timestamp(task.get("start_time")),
            complete_time=parse_timestamp(task.get("complete_time")),
            snapshots=[snapshot_from_json(s) for s in task.get("snapshots") or []],
            hyperparameters=Hyperparameters(
                epoch_count=hp.get("epoch_count"),
                batch_size=hp.get("batch_size"),
                learning_rate=hp.get("learning_rate"),
                learning_rate_multiplier=hp.get("learning_rate_multiplier"),
            ),
        ),
    )


# Every field of Google's TunedModel message (snake_case); output-only ones are ignored.
_TUNED_MODEL_FIELDS = {
    "name",
    "base_model",
    "tuned_model_source",
    "display_name",
    "description",
    "temperature",
    "top_p",
    "top_k",
    "state",
    "create_time",
    "update_time",
    "tuning_task",
    "reader_project_numbers",
    "method",  # tunesmith's own: "lora" (default) or "full"
}
_TASK_FIELDS = {
    "start_time",
    "complete_time",
    "snapshots",
    "training_data",
    "validation_data",  # tunesmith's own: held-out examples, scored at each epoch's end
    "hyperparameters",
}
_HP_FIELDS = {"epoch_count", "batch_size", "learning_rate", "learning_rate_multiplier"}


def _unknown(d: dict, known: set[str], where: str) -> None:
    extra = sorted(set(d) - known)
    if extra:
        names = ", ".join(f"{where}{k}" for k in extra)
        raise InvalidArgument(f"Invalid JSON payload received. Unknown name: {names}")


def create_request_from_json(
    body: Any, tuned_model_id: str | None = None
) -> CreateTunedModelRequest:
    """The body of ``POST tunedModels`` (a TunedModel) into the service's request."""
    d = snake_keys(json_object(body, "tuned_model"))
    _unknown(d, _TUNED_MODEL_FIELDS, "")
    task = json_object(d.get("tuning_task"), "tuning_task")
    _unknown(task, _TASK_FIELDS, "tuning_task.")
    hp = json_object(task.get("hyperparameters"), "tuning_task.hyperparameters")
    _unknown(hp, _HP_FIELDS, "tuning_task.hyperparameters.")
    source = json_object(d.get("tuned_model_source"), "tuned_model_source")
    source_model = source.get("tuned_model") or d.get("base_model")
    if source_model is None:
        raise InvalidArgument("base_model: required (or tuned_model_source.tuned_model)")
    return CreateTunedModelRequest(
        source_model=source_model,
        examples=_dataset_from_json(task, "training_data") or [],
        id=tuned_model_id,
        display_name=d.get("display_name"),
        description=d.get("description"),
        temperature=proto_float(d.get("temperature")),
        top_p=proto_float(d.get("top_p")),
        top_k=proto_int(d.get("top_k")),
        epoch_count=proto_int(hp.get("epoch_count")),
        batch_size=proto_int(hp.get("batch_size")),
        learning_rate=proto_float(hp.get("learning_rate")),
        learning_rate_multiplier=proto_float(hp.get("learning_rate_multiplier")),
        method=d.get("method") or "lora",
        validation_examples=_dataset_from_json(task, "validation_data"),
    )


def _dataset_from_json(task: dict, field: str) -> list[TuningExample | Conversation] | None:
    """``tuning_task.<field>.examples.examples[]`` (a Dataset) and, tunesmith's own,
    ``tuning_task.<field>.conversations[]`` (rows in Vertex's ``contents`` shape or OpenAI's
    ``messages`` shape, see :mod:`tunesmith.data`); None when the field is absent.

    Google's clients never see the extension: a TunedModel is never answered with its
    training data. Row errors name ``field`` (``training_data`` or ``validation_data``) as
    the SDK's do; conversations are numbered after the examples.
    """
    if task.get(field) is None:
        return None
    where = f"tuning_task.{field}"
    dataset = json_object(task[field], where)
    examples = json_object(dataset.get("examples"), f"{where}.examples")
    rows = examples.get("examples") or []
    if not isinstance(rows, list):
        raise InvalidArgument(f"{where}.examples.examples: expected a list")
    conversations = dataset.get("conversations") or []
    if not isinstance(conversations, list):
        raise InvalidArgument(f"{where}.conversations: expected a list of conversations")
    return data.examples_from_records([*rows, *conversations], field=field)


def _dataset_to_json(examples) -> dict:
    if any(isinstance(e, Conversation) for e in examples):  # all as conversations, in order
        return {
            "conversations": [
                (
                    e
                    if isinstance(e, Conversation)
                    else Conversation.single(e.text_input, e.output)
                ).to_json()
                for e in examples
            ]
        }
    return {
        "examples": {
            "examples": [{"textInput": e.text_input, "output": e.output} for e in examples]
        }
    }


def create_request_to_json(req: CreateTunedModelRequest) -> dict:
    source = (
        {"tunedModelSource": {"tunedModel": req.source_model}}
        if req.source_model.startswith("tunedModels/")
        else {"baseModel": req.source_model}
    )
    hp = compact(
        {
            "epochCount": req.epoch_count,
            "batchSize": req.batch_size,
            "learningRate": req.learning_rate,
            "learningRateMultiplier": req.learning_rate_multiplier,
        }
    )
    body = {
        **source,
        **compact(
            {
                "displayName": req.display_name,
                "description": req.description,
                "temperature": req.temperature,
                "topP": req.top_p,
                "topK": req.top_k,
            }
        ),
        "tuningTask": {"hyperparameters": hp, "trainingData": _dataset_to_json(req.examples)},
    }
    if req.validation_examples is not None:
        body["tuningTask"]["validationData"] = _dataset_to_json(req.validation_examples)
    if req.method != "lora":
        body["method"] = req.method
    return body


def validation_losses_to_json(v: ValidationLosses) -> dict:
    """tunesmith's own ``GET tunedModels/ID/validationLosses`` answer."""
    return {
        "exampleCount": v.example_count,
        "validationLosses": [snapshot_to_json(s) for s in v.losses],
    }


def validation_losses_from_json(d: dict) -> ValidationLosses:
    return ValidationLosses(
        example_count=int(d.get("exampleCount", 0)),
        losses=[snapshot_from_json(s) for s in d.get("validationLosses") or []],
    )


def update_from_json(body: Any) -> dict:
    """A PATCH body (a whole or partial TunedModel) into snake_case changes."""
    d = snake_keys(json_object(body, "tuned_model"))
    changes = {}
    for key in ("display_name", "description"):
        if key in d:
            changes[key] = d[key]
    for key, number in (("temperature", proto_float), ("top_p", proto_float), ("top_k", proto_int)):
        if key in d:
            changes[key] = number(d[key])
    return changes


def update_to_json(changes: dict) -> dict:
    return {camel(k): v for k, v in changes.items()}


def update_mask(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [snake(p.strip()) for p in value.split(",") if p.strip()]


# -- operations --------------------------------------------------------------------------


def operation_to_json(op: OperationRecord, version: str = "v1beta", *, phase: bool = False) -> dict:
    """A ``google.longrunning.Operation``; its ``@type``s name ``version``'s messages.

    ``phase`` adds tunesmith's own ``metadata.phase`` (what an unfinished run is doing, in
    words): only for callers that are not Google's clients, which refuse a field their
    metadata message does not have.
    """
    m = op.metadata
    out: dict[str, Any] = {
        "name": op.name,
        "metadata": {
            "@type": type_url("CreateTunedModelMetadata", version),
            "tunedModel": m.tuned_model,
            "totalSteps": m.total_steps,
            "completedSteps": m.completed_steps,
            "completedPercent": m.completed_percent,
            "snapshots": [snapshot_to_json(s) for s in m.snapshots],
        },
        "done": op.done,
    }
    if phase and m.phase is not None:
        out["metadata"]["phase"] = compact(
            {
                "name": str(m.phase.name),
                "description": m.phase.description,
                "progress": m.phase.progress,
            }
        )
    if op.error is not None:
        out["error"] = {"code": op.error.code, "message": op.error.message}
    elif op.response is not None:
        out["response"] = {
            "@type": type_url("TunedModel", version),
            **tuned_model_to_json(op.response),
        }
    return out


def wait_request_to_json(timeout: float) -> dict:
    """The body of ``:wait`` (``google.longrunning.WaitOperationRequest``)."""
    return {"timeout": duration(timeout)}


def wait_timeout_from_json(body: Any, default: float) -> float:
    """Seconds from a ``:wait`` body's ``timeout``; ``default`` when it has none."""
    value = json_object(body, "body").get("timeout")
    return default if value is None else parse_duration(value, "timeout")


def operation_from_json(d: dict) -> OperationRecord:
    meta = snake_keys(d.get("metadata") or {})
    record = OperationRecord(
        name=d.get("name", ""),
        metadata=CreateTunedModelMetadata(
            tuned_model=meta.get("tuned_model", ""),
            total_steps=int(meta.get("total_steps", 0)),
            completed_steps=int(meta.get("completed_steps", 0)),
            completed_percent=float(meta.get("completed_percent", 0.0)),
            snapshots=[snapshot_from_json(s) for s in meta.get("snapshots") or []],
            phase=_phase_from_json(meta.get("phase")),
        ),
        done=bool(d.get("done", False)),
    )
    if d.get("error"):
        record.error = OperationError(int(d["error"].get("code", 2)), d["error"].get("message", ""))
    elif d.get("response"):
        response = {k: v for k, v in d["response"].items() if k != "@type"}
        record.response = tuned_model_from_json(response)
    return record


def _phase_from_json(d: Any) -> RunPhase | None:
    if not isinstance(d, dict) or not d.get("name"):
        return None
    progress = d.get("progress")
    return RunPhase(str(d["name"]), None if progress is None else float(progress))
