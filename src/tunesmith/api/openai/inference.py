"""``POST /chat/completions`` and ``POST /completions``: generation through the same batched
serving as Google's generate routes (:class:`~tunesmith.service.generation.GenerationService`).

The model is any name :mod:`tunesmith.service.model_names` resolves: a base model, a tuned
model (``ft:...`` or ``tunedModels/ID``), a checkpoint (``...:ckpt-step-N``). With
``"stream": true`` the answer is server-sent events, one chunk per batch of new text as the
server chooses its tokens, then ``data: [DONE]``; an error before the first token keeps its
status, one after it is the last event (``data: {"error": ...}``, which the ``openai`` client
raises).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from ...errors import InvalidArgument, TunesmithError
from ...serving import Stream
from ...types import Generation
from ..deps import Body, CallerDep, ServiceDep, call
from . import errors as openai_errors
from .requests import Inference, chat_request, completion_request

router = APIRouter(tags=["openai: inference"])

FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
_OBJECT = {"type": "object"}
_RETURNS: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {"schema": _OBJECT},
            "text/event-stream": {"schema": {"type": "string"}},
        }
    }
}
_SAMPLING = {
    "model": {"type": "string"},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "max_tokens": {"type": "integer", "minimum": 1},
    "n": {"type": "integer", "minimum": 1, "maximum": 8},
    "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "seed": {"type": "integer", "minimum": 0},
    "stream": {"type": "boolean"},
    "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
        "content": {"type": "string"},
    },
}
_CHAT = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        **_SAMPLING,
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
    },
}
_COMPLETION = {
    "type": "object",
    "required": ["model", "prompt"],
    "properties": {**_SAMPLING, "prompt": {"type": "string"}},
}


def _body(schema: dict) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _start(service, caller, request: Inference) -> Stream:
    try:
        return await call(
            service.generation.generate_stream,
            request.model,
            request.prompt,
            request.config,
            caller,
        )
    except InvalidArgument as e:
        raise request.rename(e) from None


@router.post(
    "/chat/completions",
    summary="Chat with a base model, a tuned model or a checkpoint (stream: true for events)",
    openapi_extra=_body(_CHAT),
    responses=_RETURNS,
)
async def chat_completions(service: ServiceDep, caller: CallerDep, payload: Body):
    request = chat_request(payload)
    head = _head("chatcmpl-", "chat.completion", request.model)
    return await _answer(service, caller, request, _ChatChunks(head, request))


@router.post(
    "/completions",
    summary="Complete a prompt with a base model, a tuned model or a checkpoint",
    openapi_extra=_body(_COMPLETION),
    responses=_RETURNS,
)
async def completions(service: ServiceDep, caller: CallerDep, payload: Body):
    request = completion_request(payload)
    head = _head("cmpl-", "text_completion", request.model)
    return await _answer(service, caller, request, _TextChunks(head, request))


async def _answer(service, caller, request: Inference, chunks: _ChatChunks):
    """The whole answer, or (``stream``) its events as they are generated."""
    stream = await _start(service, caller, request)
    if request.stream:
        return await _streamed(stream, chunks)
    return chunks.whole(await stream.aresult())


def usage(answer: Generation) -> dict:
    prompt, completion = answer.prompt_token_count, answer.candidates_token_count
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _head(prefix: str, kind: str, model: str) -> dict:
    return {
        "id": prefix + secrets.token_hex(12),
        "object": kind,
        "created": int(time.time()),
        "model": model,
    }


class _ChatChunks:
    """``chat.completion.chunk`` events: the role first, then text, then finish reasons;
    and the whole ``chat.completion`` when not streamed."""

    def __init__(self, head: dict, request: Inference):
        self.answer_head = head
        self.head = {**head, "object": "chat.completion.chunk"}
        self.n = request.config.candidate_count or 1
        self.include_usage = request.include_usage

    def chunk(self, choices: list[dict], **extra) -> dict:
        out = {**self.head, "choices": choices, **extra}
        if self.include_usage:
            out.setdefault("usage", None)
        return out

    def opening(self) -> list[dict]:
        delta = {"role": "assistant", "content": ""}
        return [self.chunk([self._delta(i, delta) for i in range(self.n)])]

    def text(self, texts: dict[int, str]) -> dict:
        return self.chunk([self._part(i, t) for i, t in sorted(texts.items())])

    def end(self, answer: Generation) -> list[dict]:
        reasons = [FINISH.get(c.finish_reason, "stop") for c in answer.candidates]
        out = [self.chunk([self._part(i, None, r) for i, r in enumerate(reasons)])]
        if self.include_usage:
            out.append(self.chunk([], usage=usage(answer)))
        return out

    def whole(self, answer: Generation) -> dict:
        """The answer in one piece (not streamed)."""
        choices = [
            self._whole(i, c.output, FINISH.get(c.finish_reason, "stop"))
            for i, c in enumerate(answer.candidates)
        ]
        return {**self.answer_head, "choices": choices, "usage": usage(answer)}

    def _part(self, i: int, text: str | None, reason: str | None = None) -> dict:
        return self._delta(i, {} if text is None else {"content": text}, reason)

    @staticmethod
    def _delta(i: int, delta: dict, reason: str | None = None) -> dict:
        return {"index": i, "delta": delta, "logprobs": None, "finish_reason": reason}

    @staticmethod
    def _whole(i: int, text: str, reason: str) -> dict:
        message = {"role": "assistant", "content": text, "refusal": None}
        return {"index": i, "message": message, "logprobs": None, "finish_reason": reason}


class _TextChunks(_ChatChunks):
    """``text_completion`` events (text, then finish reasons) and the whole answer."""

    def __init__(self, head: dict, request: Inference):
        super().__init__(head, request)
        self.head = head  # chunks are text_completion objects too

    def opening(self) -> list[dict]:
        return []

    def _part(self, i: int, text: str | None, reason: str | None = None) -> dict:
        return self._whole(i, text or "", reason)

    @staticmethod
    def _whole(i: int, text: str, reason: str | None) -> dict:
        return {"text": text, "index": i, "logprobs": None, "finish_reason": reason}


async def _streamed(stream: Stream, chunks: _ChatChunks) -> StreamingResponse:
    try:  # the first event comes before the answer starts, so errors keep their status
        first = await anext(stream)
    except BaseException:
        stream.cancel()
        raise
    return StreamingResponse(_events(stream, first, chunks), media_type="text/event-stream")


async def _events(stream: Stream, first, chunks: _ChatChunks) -> AsyncIterator[str]:
    def sse(value: dict) -> str:
        return f"data: {json.dumps(value)}\n\n"

    try:
        for value in chunks.opening():
            yield sse(value)
        event = first
        while True:
            if isinstance(event, Generation):
                for value in chunks.end(event):
                    yield sse(value)
                break
            yield sse(chunks.text(event.texts))
            try:
                event = await anext(stream)
            except TunesmithError as e:  # after the answer began: the error is the last event
                yield sse(openai_errors.error_json(e))
                return
    finally:
        stream.cancel()  # a client that left stops its rows; no-op once finished
    yield "data: [DONE]\n\n"
