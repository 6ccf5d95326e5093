"""Proto-JSON: the wire form of every record, used by the HTTP API and the remote SDK.

Out: camelCase keys, enum names, RFC 3339 timestamps, ``None`` fields left out. In: camelCase
or snake_case keys, enum names or numbers, numbers or numeric strings. What Google's clients
choke on is never written: a TunedModel carries no ``tuningTask.trainingData`` and no
``learningRateMultiplier`` (google-generativeai's dataclasses crash on them), and an
operation holds only the fields of ``google.longrunning.Operation`` (its client parses them
strictly, so the ``@type`` names must be ones it knows).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from . import data
from .errors import InvalidArgument
from .service import CreateTunedModelRequest
from .types import (
    Candidate,
    CreateTunedModelMetadata,
    Generation,
    GenerationConfig,
    Hyperparameters,
    Model,
    OperationError,
    OperationRecord,
    TunedModel,
    TunedModelState,
    TuningExample,
    TuningSnapshot,
    TuningTask,
)

_TYPE_PREFIX = "type.googleapis.com/google.ai.generativelanguage.v1beta."
METADATA_TYPE = _TYPE_PREFIX + "CreateTunedModelMetadata"
TUNED_MODEL_TYPE = _TYPE_PREFIX + "TunedModel"
FINISH_REASONS = {0: "FINISH_REASON_UNSPECIFIED", 1: "STOP", 2: "MAX_TOKENS"}

# -- keys, numbers, times ----------------------------------------------------------------


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def snake_keys(value: Any) -> Any:
    """Every key of a JSON value in snake_case (``@type`` is left alone)."""
    if isinstance(value, dict):
        return {(k if k.startswith("@") else snake(k)): snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


def timestamp(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    # fromisoformat takes at most microseconds; Google writes nanoseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
    return dt.datetime.fromisoformat(text)


def _int(value: Any) -> Any:
    """An int from a number or numeric string (proto-JSON allows both); else as given."""
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _float(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _object(value: Any, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field}: expected an object, not {type(value).__name__}")
    return value


def _compact(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def _state(value: Any) -> TunedModelState:
    if isinstance(value, str) and not value.isdigit():
        return TunedModelState[value]
    return TunedModelState(int(value or 0))


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
    task = _compact(
        {
            "startTime": timestamp(m.tuning_task.start_time),
            "completeTime": timestamp(m.tuning_task.complete_time),
            "snapshots": [snapshot_to_json(s) for s in m.tuning_task.snapshots] or None,
            # learningRateMultiplier is never written: the old SDK crashes on it.
            "hyperparameters": _compact(
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
        _compact(
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
        state=_state(d.get("state")),
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
_TASK_FIELDS = {"start_time", "complete_time", "snapshots", "training_data", "hyperparameters"}
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
    d = snake_keys(_object(body, "tuned_model"))
    _unknown(d, _TUNED_MODEL_FIELDS, "")
    task = _object(d.get("tuning_task"), "tuning_task")
    _unknown(task, _TASK_FIELDS, "tuning_task.")
    hp = _object(task.get("hyperparameters"), "tuning_task.hyperparameters")
    _unknown(hp, _HP_FIELDS, "tuning_task.hyperparameters.")
    training = _object(task.get("training_data"), "tuning_task.training_data")
    examples = _object(training.get("examples"), "tuning_task.training_data.examples")
    rows = examples.get("examples") or []
    if not isinstance(rows, list):
        raise InvalidArgument("tuning_task.training_data.examples.examples: expected a list")
    source = _object(d.get("tuned_model_source"), "tuned_model_source")
    source_model = source.get("tuned_model") or d.get("base_model")
    if source_model is None:
        raise InvalidArgument("base_model: required (or tuned_model_source.tuned_model)")
    return CreateTunedModelRequest(
        source_model=source_model,
        examples=data.examples_from_records(rows),
        id=tuned_model_id,
        display_name=d.get("display_name"),
        description=d.get("description"),
        temperature=_float(d.get("temperature")),
        top_p=_float(d.get("top_p")),
        top_k=_int(d.get("top_k")),
        epoch_count=_int(hp.get("epoch_count")),
        batch_size=_int(hp.get("batch_size")),
        learning_rate=_float(hp.get("learning_rate")),
        learning_rate_multiplier=_float(hp.get("learning_rate_multiplier")),
        method=d.get("method") or "lora",
    )


def create_request_to_json(req: CreateTunedModelRequest) -> dict:
    source = (
        {"tunedModelSource": {"tunedModel": req.source_model}}
        if req.source_model.startswith("tunedModels/")
        else {"baseModel": req.source_model}
    )
    hp = _compact(
        {
            "epochCount": req.epoch_count,
            "batchSize": req.batch_size,
            "learningRate": req.learning_rate,
            "learningRateMultiplier": req.learning_rate_multiplier,
        }
    )
    examples = [{"textInput": e.text_input, "output": e.output} for e in req.examples]
    body = {
        **source,
        **_compact(
            {
                "displayName": req.display_name,
                "description": req.description,
                "temperature": req.temperature,
                "topP": req.top_p,
                "topK": req.top_k,
            }
        ),
        "tuningTask": {"hyperparameters": hp, "trainingData": {"examples": {"examples": examples}}},
    }
    if req.method != "lora":
        body["method"] = req.method
    return body


def update_from_json(body: Any) -> dict:
    """A PATCH body (a whole or partial TunedModel) into snake_case changes."""
    d = snake_keys(_object(body, "tuned_model"))
    changes = {}
    for key in ("display_name", "description"):
        if key in d:
            changes[key] = d[key]
    for key, number in (("temperature", _float), ("top_p", _float), ("top_k", _int)):
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


def operation_to_json(op: OperationRecord) -> dict:
    m = op.metadata
    out: dict[str, Any] = {
        "name": op.name,
        "metadata": {
            "@type": METADATA_TYPE,
            "tunedModel": m.tuned_model,
            "totalSteps": m.total_steps,
            "completedSteps": m.completed_steps,
            "completedPercent": m.completed_percent,
            "snapshots": [snapshot_to_json(s) for s in m.snapshots],
        },
        "done": op.done,
    }
    if op.error is not None:
        out["error"] = {"code": op.error.code, "message": op.error.message}
    elif op.response is not None:
        out["response"] = {"@type": TUNED_MODEL_TYPE, **tuned_model_to_json(op.response)}
    return out


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
        ),
        done=bool(d.get("done", False)),
    )
    if d.get("error"):
        record.error = OperationError(int(d["error"].get("code", 2)), d["error"].get("message", ""))
    elif d.get("response"):
        response = {k: v for k, v in d["response"].items() if k != "@type"}
        record.response = tuned_model_from_json(response)
    return record


# -- base models -------------------------------------------------------------------------


def model_to_json(m: Model) -> dict:
    return _compact(
        {
            "name": m.name,
            "baseModelId": m.base_model_id,
            "version": m.version,
            "displayName": m.display_name,
            "description": m.description,
            "inputTokenLimit": m.input_token_limit,
            "outputTokenLimit": m.output_token_limit,
            "supportedGenerationMethods": list(m.supported_generation_methods),
            "temperature": m.temperature,
            "maxTemperature": m.max_temperature,
            "topP": m.top_p,
            "topK": m.top_k,
        }
    )


def model_from_json(d: dict) -> Model:
    d = snake_keys(d)
    return Model(
        name=d["name"],
        base_model_id=d.get("base_model_id", ""),
        version=d.get("version", ""),
        display_name=d.get("display_name", ""),
        description=d.get("description", ""),
        input_token_limit=int(d.get("input_token_limit", 0)),
        output_token_limit=int(d.get("output_token_limit", 0)),
        supported_generation_methods=list(d.get("supported_generation_methods") or []),
        temperature=d.get("temperature"),
        max_temperature=d.get("max_temperature"),
        top_p=d.get("top_p"),
        top_k=d.get("top_k"),
    )


# -- generation --------------------------------------------------------------------------

_CONFIG_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "candidate_count",
    "max_output_tokens",
    "stop_sequences",
)


def generation_config_from_json(d: Any, field: str = "generation_config") -> GenerationConfig:
    d = snake_keys(_object(d, field))
    stops = d.get("stop_sequences") or []
    if isinstance(stops, str):
        stops = [stops]
    return GenerationConfig(
        temperature=_float(d.get("temperature")),
        top_p=_float(d.get("top_p")),
        top_k=_int(d.get("top_k")),
        candidate_count=_int(d.get("candidate_count")),
        max_output_tokens=_int(d.get("max_output_tokens")),
        stop_sequences=list(stops),
    )


def generation_config_to_json(c: GenerationConfig) -> dict:
    out = {camel(f): getattr(c, f) for f in _CONFIG_FIELDS if getattr(c, f) not in (None, [])}
    return out


def text_request_from_json(body: Any) -> tuple[str, GenerationConfig]:
    """A PaLM ``generateText`` body: ``{"prompt": {"text": ...}, "temperature": ...}``."""
    d = snake_keys(_object(body, "request"))
    prompt = _object(d.get("prompt"), "prompt").get("text")
    if prompt is not None and not isinstance(prompt, str):
        raise InvalidArgument("prompt.text: expected a string")
    return prompt or "", generation_config_from_json({k: d.get(k) for k in _CONFIG_FIELDS})


def contents_text(contents: Any, field: str = "contents") -> str:
    """The text of Gemini ``contents`` (a list of turns, each with text parts)."""
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise InvalidArgument(f"{field}: at least one content with a text part is required")
    texts = []
    for i, content in enumerate(contents):
        parts = _object(content, f"{field}[{i}]").get("parts")
        if not isinstance(parts, list) or not parts:
            raise InvalidArgument(f"{field}[{i}].parts: at least one part is required")
        for j, part in enumerate(parts):
            text = _object(part, f"{field}[{i}].parts[{j}]").get("text")
            if not isinstance(text, str):
                raise InvalidArgument(
                    f"{field}[{i}].parts[{j}]: only text parts are supported by these models"
                )
            texts.append(text)
    return "\n".join(texts)


def content_request_from_json(body: Any) -> tuple[str, GenerationConfig]:
    """A Gemini ``generateContent`` body: ``{"contents": [...], "generationConfig": ...}``."""
    d = snake_keys(_object(body, "request"))
    return contents_text(d.get("contents")), generation_config_from_json(d.get("generation_config"))


def count_request_text(body: Any) -> str:
    """``countTokens`` (contents, or a whole generateContentRequest) or ``countTextTokens``."""
    d = snake_keys(_object(body, "request"))
    if "generate_content_request" in d:
        inner = _object(d["generate_content_request"], "generate_content_request")
        return contents_text(inner.get("contents"), "generate_content_request.contents")
    if "prompt" in d:
        return text_request_from_json(d)[0]
    return contents_text(d.get("contents"))


def text_response(gen: Generation) -> dict:
    return {
        "candidates": [{"output": c.output, "safetyRatings": []} for c in gen.candidates],
        "filters": [],
        "safetyFeedback": [],
    }


def _usage(gen: Generation) -> dict:
    return {
        "promptTokenCount": gen.prompt_token_count,
        "candidatesTokenCount": gen.candidates_token_count,
        "totalTokenCount": gen.prompt_token_count + gen.candidates_token_count,
    }


def content_response(gen: Generation, model: str) -> dict:
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": c.output}], "role": "model"},
                "finishReason": c.finish_reason,
                "index": i,
                "tokenCount": c.token_count,
            }
            for i, c in enumerate(gen.candidates)
        ],
        "usageMetadata": _usage(gen),
        "modelVersion": model,
    }


def content_chunks(gen: Generation, model: str) -> list[dict]:
    """A streamed answer: text chunks, each with a text part, the last one finished."""
    full = content_response(gen, model)
    chunks = []
    for i, c in enumerate(gen.candidates):
        words = re.findall(r"\S+\s*|\s+", c.output) or [""]
        for k, word in enumerate(words):
            last = k == len(words) - 1
            cand: dict[str, Any] = {
                "content": {"parts": [{"text": word}], "role": "model"},
                "index": i,
            }
            if last:
                cand["finishReason"] = c.finish_reason
                cand["tokenCount"] = c.token_count
            chunks.append({"candidates": [cand], "modelVersion": model})
    chunks[-1]["usageMetadata"] = full["usageMetadata"]
    return chunks


def generation_from_content_json(d: dict) -> Generation:
    d = snake_keys(d)
    candidates = []
    for c in d.get("candidates") or []:
        parts = (c.get("content") or {}).get("parts") or []
        reason = c.get("finish_reason", "STOP")
        if isinstance(reason, int):
            reason = FINISH_REASONS.get(reason, "STOP")
        candidates.append(
            Candidate(
                output="".join(p.get("text", "") for p in parts),
                finish_reason=reason,
                token_count=int(c.get("token_count", 0)),
            )
        )
    usage = d.get("usage_metadata") or {}
    return Generation(candidates, int(usage.get("prompt_token_count", 0)))


__all__ = [
    "METADATA_TYPE",
    "TUNED_MODEL_TYPE",
    "TuningExample",
    "content_chunks",
    "content_request_from_json",
    "content_response",
    "count_request_text",
    "create_request_from_json",
    "create_request_to_json",
    "generation_config_to_json",
    "generation_from_content_json",
    "model_from_json",
    "model_to_json",
    "operation_from_json",
    "operation_to_json",
    "text_request_from_json",
    "text_response",
    "tuned_model_from_json",
    "tuned_model_to_json",
    "update_from_json",
    "update_mask",
]
