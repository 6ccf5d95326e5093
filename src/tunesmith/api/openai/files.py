"""``/files``: upload (multipart ``file`` + ``purpose``), list, retrieve, content, delete.

A thin adapter over :class:`~tunesmith.service.files.FileService`: who may see a file, the
size limits and the checking of its rows are the service's. The multipart body is read with
the standard library's MIME parser (the request limit in :mod:`..limits` bounds it first).
"""

from __future__ import annotations

import email.parser
import email.policy
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...errors import InvalidArgument
from ...store.files import StoredFile
from ..deps import CallerDep, ServiceDep, call
from .pagination import Listing, list_json, page

router = APIRouter(tags=["openai: files"])

_FILE = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["file"]},
        "bytes": {"type": "integer"},
        "created_at": {"type": "integer"},
        "filename": {"type": "string"},
        "purpose": {"type": "string", "enum": ["fine-tune"]},
        "status": {"type": "string"},
    },
}
_ONE: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {"schema": _FILE}}}}
_UPLOAD = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": ["fine-tune"]},
                    },
                }
            }
        },
    }
}


def file_json(f: StoredFile) -> dict:
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": int(f.created_at.timestamp()),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


def parse_form(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """A ``multipart/form-data`` body's fields: name -> (file name or None, bytes)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidArgument("file: send multipart/form-data with fields 'file' and 'purpose'")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise InvalidArgument("file: the multipart body could not be read")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True)
            fields[str(name)] = (
                part.get_filename(),
                payload if isinstance(payload, bytes) else b"",
            )
    return fields


@router.post(
    "/files",
    summary="Upload a training file (JSONL of chat or prompt/completion rows)",
    responses=_ONE,
    openapi_extra=_UPLOAD,
)
async def upload_file(request: Request, service: ServiceDep, caller: CallerDep):
    fields = parse_form(request.headers.get("content-type", ""), await request.body())
    if "file" not in fields:
        raise InvalidArgument("file: the form has no 'file' field")
    if "purpose" not in fields:
        raise InvalidArgument("purpose: the form has no 'purpose' field (use fine-tune)")
    filename, content = fields["file"]
    purpose = fields["purpose"][1].decode("utf-8", "replace").strip()
    stored = await call(service.files.upload, filename or "", purpose, content, caller)
    return file_json(stored)


@router.get(
    "/files",
    summary="The caller's files, newest first",
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def list_files(
    service: ServiceDep,
    caller: CallerDep,
    listing: Listing,
    purpose: Annotated[str | None, Query()] = None,
    order: Annotated[str | None, Query()] = None,
):
    if order not in (None, "", "asc", "desc"):
        raise InvalidArgument(f"order: {order!r} must be asc or desc")
    found = await call(service.files.list, caller, purpose or None)
    if order == "asc":
        found = found[::-1]
    chosen, more = page(found, listing, lambda f: f.id)
    return list_json([file_json(f) for f in chosen], more)


@router.get("/files/{file_id}", summary="A file's record", responses=_ONE)
async def get_file(file_id: str, service: ServiceDep, caller: CallerDep):
    return file_json(await call(service.files.get, file_id, caller))


@router.get(
    "/files/{file_id}/content",
    summary="A file's bytes",
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def get_file_content(file_id: str, service: ServiceDep, caller: CallerDep):
    content = await call(service.files.content, file_id, caller)
    return Response(content, media_type="application/octet-stream")


@router.delete(
    "/files/{file_id}",
    summary="Delete a file (its record and its bytes)",
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def delete_file(file_id: str, service: ServiceDep, caller: CallerDep):
    deleted = await call(service.files.delete, file_id, caller)
    return {"id": deleted.id, "object": "file", "deleted": True}
