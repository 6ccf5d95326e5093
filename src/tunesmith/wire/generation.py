"""Proto-JSON of base models and of generation (PaLM generateText, Gemini generateContent)."""

from __future__ import annotations

import re
from typing import Any

from .. import data
from ..errors import InvalidArgument
from ..records.conversations import Conversation
from ..types import Candidate, Generation, GenerationConfig, Model
from ._base import camel, compact, json_object, proto_float, proto_int, snake_keys

FINISH_REASONS = {0: "FINISH_REASON_UNSPECIFIED", 1: "STOP", 2: "MAX_TOKENS"}

# -- base models -------------------------------------------------------------------------


def model_to_json(m: Model) -> dict:
    return compact(
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
    "seed",  # Gemini's generationConfig.seed
)


def generation_config_from_json(d: Any, field: str = "generation_config") -> GenerationConfig:
    d = snake_keys(json_object(d, field))
    stops = d.get("stop_sequences") or []
    if isinstance(stops, str):
        stops = [stops]
    if not isinstance(stops, list):
        raise InvalidArgument(
            f"{field}.stop_sequences: expected a list of strings, not {type(stops).__name__}"
        )
    return GenerationConfig(
        temperature=proto_float(d.get("temperature")),
        top_p=proto_float(d.get("top_p")),
        top_k=proto_int(d.get("top_k")),
        candidate_count=proto_int(d.get("candidate_count")),
        max_output_tokens=proto_int(d.get("max_output_tokens")),
        stop_sequences=list(stops),
        seed=proto_int(d.get("seed")),
    )


def generation_config_to_json(c: GenerationConfig) -> dict:
    out = {camel(f): getattr(c, f) for f in _CONFIG_FIELDS if getattr(c, f) not in (None, [])}
    return out


def text_request_from_json(body: Any) -> tuple[str, GenerationConfig]:
    """A PaLM ``generateText`` body: ``{"prompt": {"text": ...}, "temperature": ...}``."""
    d = snake_keys(json_object(body, "request"))
    prompt = json_object(d.get("prompt"), "prompt").get("text")
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
        parts = json_object(content, f"{field}[{i}]").get("parts")
        if not isinstance(parts, list) or not parts:
            raise InvalidArgument(f"{field}[{i}].parts: at least one part is required")
        for j, part in enumerate(parts):
            text = json_object(part, f"{field}[{i}].parts[{j}]").get("text")
            if not isinstance(text, str):
                raise InvalidArgument(
                    f"{field}[{i}].parts[{j}]: only text parts are supported by these models"
                )
            texts.append(text)
    return "\n".join(texts)


def contents_prompt(contents: Any, system: Any = None, field: str = "contents"):
    """Gemini ``contents`` (and ``systemInstruction``) as what the service generates from:
    one user content without a system instruction is its text (as it always was); anything
    else is a :class:`Conversation` (user / model turns, checked by the service)."""
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise InvalidArgument(f"{field}: at least one content with a text part is required")
    one_user_turn = len(contents) == 1 and (
        not isinstance(contents[0], dict) or contents[0].get("role", "user") == "user"
    )
    if system is None and one_user_turn:
        return contents_text(contents, field)
    return data.conversation_from_json(
        {"contents": contents, "system_instruction": system}, where=field
    )


def conversation_to_json(prompt: str | Conversation) -> dict:
    """``contents`` (and ``systemInstruction``) of a request body, for a text or a
    conversation (the remote SDK's side of :func:`contents_prompt`)."""
    if isinstance(prompt, Conversation):
        return prompt.to_json()
    return {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}


def content_request_from_json(body: Any) -> tuple[str | Conversation, GenerationConfig]:
    """A Gemini ``generateContent`` body: ``{"contents": [...], "systemInstruction": ...,
    "generationConfig": ...}``."""
    d = snake_keys(json_object(body, "request"))
    prompt = contents_prompt(d.get("contents"), d.get("system_instruction"))
    return prompt, generation_config_from_json(d.get("generation_config"))


def count_request_text(body: Any) -> str | Conversation:
    """``countTokens`` (contents, or a whole generateContentRequest) or ``countTextTokens``."""
    d = snake_keys(json_object(body, "request"))
    if "generate_content_request" in d:
        inner = json_object(d["generate_content_request"], "generate_content_request")
        return contents_prompt(
            inner.get("contents"),
            inner.get("system_instruction"),
            "generate_content_request.contents",
        )
    if "prompt" in d:
        return text_request_from_json(d)[0]
    return contents_prompt(d.get("contents"), d.get("system_instruction"))


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
