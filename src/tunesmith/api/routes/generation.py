"""Generation on base (``models/*``) and tuned (``tunedModels/*``) models.

PaLM's ``generateText`` / ``countTextTokens`` and Gemini's ``generateContent``,
``streamGenerateContent`` (a JSON array, or server-sent events with ``?alt=sse``) and
``countTokens``. Requests are checked and queued in a thread; the answer is awaited on the
serving stream, so no thread waits while tokens are generated and the loop keeps answering.
``streamGenerateContent`` sends each chunk as the server chooses its tokens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ... import wire
from ...errors import TunesmithError
from ...serving import Stream
from ...types import Candidate, Generation
from ..deps import Body, CallerDep, ServiceDep, call
from ..docs import COUNT_TOKENS, GENERATE_CONTENT, GENERATE_TEXT, body, returns

router = APIRouter(tags=["generation"])


def _routes(collection: str) -> None:
    prefix = f"/{collection}/{{model_id}}"

    @router.post(
        prefix + ":generateText",
        summary=f"PaLM text completion with a {collection} model",
        openapi_extra=body(GENERATE_TEXT),
        responses=returns({"type": "object"}),
        name=f"{collection}_generate_text",
    )
    async def generate_text(model_id: str, service: ServiceDep, caller: CallerDep, payload: Body):
        prompt, config = wire.text_request_from_json(payload)
        model = f"{collection}/{model_id}"
        stream = await call(service.generation.generate_stream, model, prompt, config, caller)
        return wire.text_response(await stream.aresult())

    @router.post(
        prefix + ":generateContent",
        summary=f"Gemini generateContent with a {collection} model",
        openapi_extra=body(GENERATE_CONTENT),
        responses=returns({"type": "object"}),
        name=f"{collection}_generate_content",
    )
    async def generate_content(
        model_id: str, service: ServiceDep, caller: CallerDep, payload: Body
    ):
        model = f"{collection}/{model_id}"
        prompt, config = wire.content_request_from_json(payload)
        stream = await call(service.generation.generate_stream, model, prompt, config, caller)
        return wire.content_response(await stream.aresult(), model)

    @router.post(
        prefix + ":streamGenerateContent",
        summary=f"Streamed generateContent with a {collection} model (?alt=sse for events)",
        openapi_extra=body(GENERATE_CONTENT),
        responses=returns({"type": "array", "items": {"type": "object"}}),
        name=f"{collection}_stream_generate_content",
    )
    async def stream_generate_content(
        request: Request, model_id: str, service: ServiceDep, caller: CallerDep, payload: Body
    ):
        model = f"{collection}/{model_id}"
        prompt, config = wire.content_request_from_json(payload)
        stream = await call(service.generation.generate_stream, model, prompt, config, caller)
        try:  # the first chunk comes before the answer starts, so errors keep their status
            first = await anext(stream)
        except BaseException:
            stream.cancel()
            raise
        sse = request.query_params.get("alt") == "sse"
        return StreamingResponse(
            _stream_body(stream, first, model, sse),
            media_type="text/event-stream" if sse else "application/json",
        )

    @router.post(
        prefix + ":countTokens",
        summary=f"Count the tokens of contents for a {collection} model",
        openapi_extra=body(COUNT_TOKENS),
        responses=returns({"type": "object", "properties": {"totalTokens": {"type": "integer"}}}),
        name=f"{collection}_count_tokens",
    )
    async def count_tokens(model_id: str, service: ServiceDep, caller: CallerDep, payload: Body):
        text = wire.count_request_text(payload)
        n = await call(service.generation.count_tokens, f"{collection}/{model_id}", text, caller)
        return {"totalTokens": n}

    @router.post(
        prefix + ":countTextTokens",
        summary=f"PaLM countTextTokens for a {collection} model",
        openapi_extra=body(GENERATE_TEXT),
        responses=returns({"type": "object", "properties": {"tokenCount": {"type": "integer"}}}),
        name=f"{collection}_count_text_tokens",
    )
    async def count_text_tokens(
        model_id: str, service: ServiceDep, caller: CallerDep, payload: Body
    ):
        prompt, _config = wire.text_request_from_json(payload)
        n = await call(service.generation.count_tokens, f"{collection}/{model_id}", prompt, caller)
        return {"tokenCount": n}


async def _stream_body(stream: Stream, first, model: str, sse: bool) -> AsyncIterator[str]:
    """Chunks as the server makes them: a JSON array, or server-sent events with ``?alt=sse``."""
    frame = "data: {}\r\n\r\n" if sse else "{}"
    sep = "" if sse else "\n,\r\n"
    if not sse:
        yield "["
    try:
        event, n = first, 0
        while True:
            yield (sep if n else "") + frame.format(json.dumps(_chunk(event, model)))
            if isinstance(event, Generation):
                break
            n += 1
            try:
                event = await anext(stream)
            except TunesmithError as e:  # after the answer began: the error is the last chunk
                yield (sep if n else "") + frame.format(json.dumps(e.to_json()))
                break
    finally:
        stream.cancel()  # a client that left stops its rows; no-op once finished
    if not sse:
        yield "]"


def _chunk(event, model: str) -> dict:
    """One streamed chunk; each candidate in it has a text part, as the old SDK's .text needs."""
    if isinstance(event, Generation):  # the end: finish reasons, token counts, usage
        done = [Candidate("", c.finish_reason, c.token_count) for c in event.candidates]
        return wire.content_response(Generation(done, event.prompt_token_count), model)
    candidates = [
        {"content": {"parts": [{"text": text}], "role": "model"}, "index": i}
        for i, text in sorted(event.texts.items())
    ]
    return {"candidates": candidates, "modelVersion": model}


# tunedModels first: the plain ``tunedModels/{id}`` routes must not swallow ``id:verb``.
for _collection in ("tunedModels", "models"):
    _routes(_collection)
