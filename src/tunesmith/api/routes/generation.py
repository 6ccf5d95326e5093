"""Generation on base (``models/*``) and tuned (``tunedModels/*``) models.

PaLM's ``generateText`` / ``countTextTokens`` and Gemini's ``generateContent``,
``streamGenerateContent`` (a JSON array, or server-sent events with ``?alt=sse``) and
``countTokens``. Generation runs in a thread so the event loop keeps answering.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ... import wire
from ..deps import Body, Owner, ServiceDep, call
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
    async def generate_text(model_id: str, service: ServiceDep, owner: Owner, payload: Body):
        prompt, config = wire.text_request_from_json(payload)
        gen = await call(
            service.generation.generate, f"{collection}/{model_id}", prompt, config, owner
        )
        return wire.text_response(gen)

    @router.post(
        prefix + ":generateContent",
        summary=f"Gemini generateContent with a {collection} model",
        openapi_extra=body(GENERATE_CONTENT),
        responses=returns({"type": "object"}),
        name=f"{collection}_generate_content",
    )
    async def generate_content(model_id: str, service: ServiceDep, owner: Owner, payload: Body):
        model = f"{collection}/{model_id}"
        prompt, config = wire.content_request_from_json(payload)
        gen = await call(service.generation.generate, model, prompt, config, owner)
        return wire.content_response(gen, model)

    @router.post(
        prefix + ":streamGenerateContent",
        summary=f"Streamed generateContent with a {collection} model (?alt=sse for events)",
        openapi_extra=body(GENERATE_CONTENT),
        responses=returns({"type": "array", "items": {"type": "object"}}),
        name=f"{collection}_stream_generate_content",
    )
    async def stream_generate_content(
        request: Request, model_id: str, service: ServiceDep, owner: Owner, payload: Body
    ):
        model = f"{collection}/{model_id}"
        prompt, config = wire.content_request_from_json(payload)
        gen = await call(service.generation.generate, model, prompt, config, owner)
        chunks = wire.content_chunks(gen, model)
        if request.query_params.get("alt") == "sse":
            events = [f"data: {json.dumps(c)}\r\n\r\n" for c in chunks]
            return StreamingResponse(iter(events), media_type="text/event-stream")
        return JSONResponse(chunks)

    @router.post(
        prefix + ":countTokens",
        summary=f"Count the tokens of contents for a {collection} model",
        openapi_extra=body(COUNT_TOKENS),
        responses=returns({"type": "object", "properties": {"totalTokens": {"type": "integer"}}}),
        name=f"{collection}_count_tokens",
    )
    async def count_tokens(model_id: str, service: ServiceDep, owner: Owner, payload: Body):
        text = wire.count_request_text(payload)
        n = await call(service.generation.count_tokens, f"{collection}/{model_id}", text, owner)
        return {"totalTokens": n}

    @router.post(
        prefix + ":countTextTokens",
        summary=f"PaLM countTextTokens for a {collection} model",
        openapi_extra=body(GENERATE_TEXT),
        responses=returns({"type": "object", "properties": {"tokenCount": {"type": "integer"}}}),
        name=f"{collection}_count_text_tokens",
    )
    async def count_text_tokens(model_id: str, service: ServiceDep, owner: Owner, payload: Body):
        prompt, _config = wire.text_request_from_json(payload)
        n = await call(service.generation.count_tokens, f"{collection}/{model_id}", prompt, owner)
        return {"tokenCount": n}


# tunedModels first: the plain ``tunedModels/{id}`` routes must not swallow ``id:verb``.
for _collection in ("tunedModels", "models"):
    _routes(_collection)
