"""Tuning operations: get (cheap: ``wait_bar`` polls it without sleeping), wait, list, cancel."""

from __future__ import annotations

from fastapi import APIRouter

from ... import wire
from ...service.tuning import MAX_WAIT_SECONDS
from ..deps import ApiVersion, Body, CallerDep, ServiceDep, TunesmithFields, call, call_waiting
from ..docs import OPERATION, returns

router = APIRouter(tags=["operations"])

_LIST = {
    "type": "object",
    "properties": {
        "operations": {"type": "array", "items": OPERATION},
        "nextPageToken": {"type": "string"},
    },
}


@router.get(
    "/tunedModels/{model_id}/operations/{operation_id}",
    summary="Get a tuning operation",
    responses=returns(OPERATION),
)
async def get_operation(
    model_id: str,
    operation_id: str,
    service: ServiceDep,
    caller: CallerDep,
    version: ApiVersion,
    extended: TunesmithFields,
):
    name = f"tunedModels/{model_id}/operations/{operation_id}"
    op = await call(service.tuning.get_operation, name, caller)
    return wire.operation_to_json(op, version, phase=extended)


@router.post(
    "/tunedModels/{model_id}/operations/{operation_id}:wait",
    summary="Wait for a tuning operation to end (tunesmith's own; Google's WaitOperation)",
    description="Answers the operation once it is done, or as it is after the body's "
    f'`timeout` (a Duration such as `"5s"`; at most and by default {MAX_WAIT_SECONDS:g} s).',
    responses=returns(OPERATION),
)
async def wait_operation(
    model_id: str,
    operation_id: str,
    body: Body,
    service: ServiceDep,
    caller: CallerDep,
    version: ApiVersion,
    extended: TunesmithFields,
):
    name = f"tunedModels/{model_id}/operations/{operation_id}"
    timeout = wire.wait_timeout_from_json(body, MAX_WAIT_SECONDS)
    op = await call_waiting(service.tuning.wait_operation, name, timeout, caller)
    return wire.operation_to_json(op, version, phase=extended)


@router.get(
    "/tunedModels/{model_id}/operations",
    summary="List a tuned model's operations",
    responses=returns(_LIST),
)
async def list_operations(
    model_id: str,
    service: ServiceDep,
    caller: CallerDep,
    version: ApiVersion,
    extended: TunesmithFields,
):
    ops = await call(service.tuning.list_operations, f"tunedModels/{model_id}", caller)
    return {"operations": [wire.operation_to_json(op, version, phase=extended) for op in ops]}


@router.get(
    "/operations",
    summary="List every operation of the caller (tunesmith's own)",
    responses=returns(_LIST),
)
async def list_all_operations(
    service: ServiceDep, caller: CallerDep, version: ApiVersion, extended: TunesmithFields
):
    ops = await call(service.tuning.list_operations, None, caller)
    return {"operations": [wire.operation_to_json(op, version, phase=extended) for op in ops]}


@router.post(
    "/tunedModels/{model_id}/operations/{operation_id}:cancel",
    summary="Cancel a tuning operation (the body may be empty)",
    responses=returns({"type": "object"}),
)
async def cancel_operation(
    model_id: str, operation_id: str, service: ServiceDep, caller: CallerDep
):
    name = f"tunedModels/{model_id}/operations/{operation_id}"
    await call(service.tuning.cancel_operation, name, caller)
    return {}  # google.protobuf.Empty, as Google answers
