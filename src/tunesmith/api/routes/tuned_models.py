"""``tunedModels``: create (a long-running operation), get, list, patch, delete; and
tunesmith's own ``validationLosses`` (the loss over a job's validation data per epoch)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from ... import wire
from ..deps import ApiVersion, Body, CallerDep, ServiceDep, TunesmithFields, call
from ..docs import OPERATION, TUNED_MODEL, VALIDATION_LOSSES, body, returns

router = APIRouter(tags=["tunedModels"])


def _query(request: Request, camel_name: str) -> str | None:
    """A query parameter by its camelCase name or its snake_case one."""
    params = request.query_params
    return params.get(camel_name) or params.get(wire.snake(camel_name))


@router.post(
    "/tunedModels",
    summary="Create a tuned model; answers with its long-running operation",
    openapi_extra=body(TUNED_MODEL),
    responses=returns(OPERATION),
)
async def create_tuned_model(
    request: Request,
    service: ServiceDep,
    caller: CallerDep,
    payload: Body,
    version: ApiVersion,
    extended: TunesmithFields,
    tunedModelId: Annotated[str | None, Query(description="The new model's id")] = None,
):
    model_id = tunedModelId or _query(request, "tunedModelId")
    req = wire.create_request_from_json(payload, model_id)
    op = await call(service.tuning.create_tuned_model, req, caller)
    return wire.operation_to_json(op, version, phase=extended)


@router.get(
    "/tunedModels",
    summary="List the caller's tuned models, a page at a time",
    responses=returns(
        {
            "type": "object",
            "properties": {
                "tunedModels": {"type": "array", "items": TUNED_MODEL},
                "nextPageToken": {"type": "string"},
            },
        }
    ),
)
async def list_tuned_models(
    request: Request,
    service: ServiceDep,
    caller: CallerDep,
    pageSize: Annotated[int | None, Query()] = None,
    pageToken: Annotated[str | None, Query()] = None,
    filter: Annotated[str | None, Query(description="words to search, or owner:me")] = None,
):
    if pageSize is None and request.query_params.get("page_size") is not None:
        pageSize = wire.proto_int(request.query_params["page_size"])
    token = pageToken or request.query_params.get("page_token")
    models, next_token = await call(
        service.tuning.list_tuned_models, pageSize, token, filter, caller
    )
    out: dict = {"tunedModels": [wire.tuned_model_to_json(m) for m in models]}
    if next_token:
        out["nextPageToken"] = next_token
    return out


@router.get("/tunedModels/{model_id}", summary="Get a tuned model", responses=returns(TUNED_MODEL))
async def get_tuned_model(model_id: str, service: ServiceDep, caller: CallerDep):
    model = await call(service.tuning.get_tuned_model, f"tunedModels/{model_id}", caller)
    return wire.tuned_model_to_json(model)


@router.get(
    "/tunedModels/{model_id}/validationLosses",
    summary="tunesmith's own: the loss over the validation data at the end of each epoch",
    responses=returns(VALIDATION_LOSSES),
)
async def get_validation_losses(model_id: str, service: ServiceDep, caller: CallerDep):
    losses = await call(service.tuning.get_validation_losses, f"tunedModels/{model_id}", caller)
    return wire.validation_losses_to_json(losses)


@router.patch(
    "/tunedModels/{model_id}",
    summary="Update a tuned model; with updateMask only the masked fields change",
    openapi_extra=body(TUNED_MODEL),
    responses=returns(TUNED_MODEL),
)
async def update_tuned_model(
    request: Request,
    model_id: str,
    service: ServiceDep,
    caller: CallerDep,
    payload: Body,
    updateMask: Annotated[
        str | None, Query(description="Comma-separated fields, camelCase or snake_case")
    ] = None,
):
    mask = wire.update_mask(updateMask or _query(request, "updateMask"))
    changes = wire.update_from_json(payload)
    model = await call(
        service.tuning.update_tuned_model, f"tunedModels/{model_id}", changes, mask, caller
    )
    return wire.tuned_model_to_json(model)


@router.delete(
    "/tunedModels/{model_id}",
    summary="Delete a tuned model, its operation and its weights",
    responses=returns({"type": "object"}),
)
async def delete_tuned_model(model_id: str, service: ServiceDep, caller: CallerDep):
    await call(service.tuning.delete_tuned_model, f"tunedModels/{model_id}", caller)
    return {}
