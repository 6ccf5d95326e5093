"""``GET /models``, ``GET /models/{model}``, ``DELETE /models/{model}`` (tuned models only).

Ids with ``/`` (``tunedModels/ID``) arrive as ``%2F`` and colons (``ft:...``) raw, so the
routes take the rest of the path (``{model:path}``).
"""

from __future__ import annotations

from fastapi import APIRouter

from ...service.model_names import NamedModel
from ..deps import CallerDep, ServiceDep, call
from .pagination import list_json

router = APIRouter(tags=["openai: models"])

_MODEL = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string"},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
    },
}


def model_json(m: NamedModel) -> dict:
    return {"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by}


@router.get(
    "/models",
    summary="The base models offered and the tuned models the caller may use",
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def list_models(service: ServiceDep, caller: CallerDep):
    models = await call(service.models.list, caller)
    return list_json([model_json(m) for m in models])


@router.get(
    "/models/{model:path}",
    summary="A model by its id",
    responses={200: {"content": {"application/json": {"schema": _MODEL}}}},
)
async def get_model(model: str, service: ServiceDep, caller: CallerDep):
    return model_json(await call(service.models.get, model, caller))


@router.delete(
    "/models/{model:path}",
    summary="Delete a tuned model (its owner only)",
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def delete_model(model: str, service: ServiceDep, caller: CallerDep):
    deleted = await call(service.models.delete, model, caller)
    return {"id": deleted.id, "object": "model", "deleted": True}
