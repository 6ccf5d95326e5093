"""Base models: ``GET models`` and ``GET models/ID`` (aliases such as text-bison-001 too)."""

from __future__ import annotations

from fastapi import APIRouter

from ... import wire
from ..deps import CallerDep, ServiceDep, call
from ..docs import returns

router = APIRouter(tags=["models"])

_MODEL = {"type": "object", "properties": {"name": {"type": "string"}}}


@router.get(
    "/models",
    summary="List the base models this server offers (the only ones a caller may name)",
    responses=returns(
        {"type": "object", "properties": {"models": {"type": "array", "items": _MODEL}}}
    ),
)
async def list_models(service: ServiceDep, _caller: CallerDep):
    models = await call(service.generation.list_models)
    return {"models": [wire.model_to_json(m) for m in models]}


@router.get("/models/{model_id}", summary="Get a base model", responses=returns(_MODEL))
async def get_model(model_id: str, service: ServiceDep, _caller: CallerDep):
    return wire.model_to_json(await call(service.generation.get_model, f"models/{model_id}"))
