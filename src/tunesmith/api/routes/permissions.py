"""``tunedModels/{id}/permissions`` (create, list, get, patch, delete) and
``tunedModels/{id}:transferOwnership``. Only a model's OWNER may call them; the rule is the
service's (:mod:`tunesmith.service.access`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from ...wire import permissions as pwire
from ...wire import proto_int, update_mask
from ..deps import Body, CallerDep, ServiceDep, call
from ..docs import body, returns

router = APIRouter(tags=["permissions"])

PERMISSION = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "readOnly": True},
        "granteeType": {"type": "string", "enum": ["USER", "GROUP", "EVERYONE"]},
        "emailAddress": {"type": "string"},
        "role": {"type": "string", "enum": ["OWNER", "WRITER", "READER"]},
    },
}
_LIST = {
    "type": "object",
    "properties": {
        "permissions": {"type": "array", "items": PERMISSION},
        "nextPageToken": {"type": "string"},
    },
}
_TRANSFER = {"type": "object", "properties": {"emailAddress": {"type": "string"}}}


@router.post(
    "/tunedModels/{model_id}/permissions",
    summary="Share a tuned model with a user, a group or everyone (owner only)",
    openapi_extra=body(PERMISSION),
    responses=returns(PERMISSION),
)
async def create_permission(model_id: str, service: ServiceDep, caller: CallerDep, payload: Body):
    new = pwire.permission_from_json(payload)
    grant = await call(
        service.permissions.create_permission, f"tunedModels/{model_id}", new, caller
    )
    return pwire.permission_to_json(grant)


@router.get(
    "/tunedModels/{model_id}/permissions",
    summary="List a tuned model's permissions, its owner first (owner only)",
    responses=returns(_LIST),
)
async def list_permissions(
    request: Request,
    model_id: str,
    service: ServiceDep,
    caller: CallerDep,
    pageSize: Annotated[int | None, Query()] = None,
    pageToken: Annotated[str | None, Query()] = None,
):
    params = request.query_params
    if pageSize is None and params.get("page_size") is not None:
        pageSize = proto_int(params["page_size"])
    token = pageToken or params.get("page_token")
    grants, next_token = await call(
        service.permissions.list_permissions, f"tunedModels/{model_id}", pageSize, token, caller
    )
    out: dict = {"permissions": [pwire.permission_to_json(g) for g in grants]}
    if next_token:
        out["nextPageToken"] = next_token
    return out


@router.get(
    "/tunedModels/{model_id}/permissions/{permission_id}",
    summary="Get a permission (owner only)",
    responses=returns(PERMISSION),
)
async def get_permission(model_id: str, permission_id: str, service: ServiceDep, caller: CallerDep):
    name = f"tunedModels/{model_id}/permissions/{permission_id}"
    return pwire.permission_to_json(await call(service.permissions.get_permission, name, caller))


@router.patch(
    "/tunedModels/{model_id}/permissions/{permission_id}",
    summary="Change a permission's role; updateMask=role (owner only)",
    openapi_extra=body(PERMISSION),
    responses=returns(PERMISSION),
)
async def update_permission(
    request: Request,
    model_id: str,
    permission_id: str,
    service: ServiceDep,
    caller: CallerDep,
    payload: Body,
    updateMask: Annotated[str | None, Query(description="role")] = None,
):
    mask = update_mask(updateMask or request.query_params.get("update_mask"))
    name = f"tunedModels/{model_id}/permissions/{permission_id}"
    role = pwire.role_from_json(payload)
    grant = await call(service.permissions.update_permission, name, role, mask, caller)
    return pwire.permission_to_json(grant)


@router.delete(
    "/tunedModels/{model_id}/permissions/{permission_id}",
    summary="Delete a permission (owner only)",
    responses=returns({"type": "object"}),
)
async def delete_permission(
    model_id: str, permission_id: str, service: ServiceDep, caller: CallerDep
):
    name = f"tunedModels/{model_id}/permissions/{permission_id}"
    await call(service.permissions.delete_permission, name, caller)
    return {}


@router.post(
    "/tunedModels/{model_id}:transferOwnership",
    summary="Give the model to another user; the previous owner becomes a WRITER (owner only)",
    openapi_extra=body(_TRANSFER),
    responses=returns({"type": "object"}),
)
async def transfer_ownership(model_id: str, service: ServiceDep, caller: CallerDep, payload: Body):
    email = pwire.transfer_email_from_json(payload)
    await call(service.permissions.transfer_ownership, f"tunedModels/{model_id}", email, caller)
    return {}
