"""tunesmith's own: download a tuned model for another runtime.

``GET /v1beta/tunedModels/ID:export?format=gguf&quantization=Q8_0`` answers with the GGUF
file itself; every other format (and ``gguf`` with ``archive=true``, which adds the Ollama
Modelfile) with a tar of the export's folder, whose files sit under ``ID-FORMAT/``. The
service makes the export once per version of the weights; the rules (a READER may export,
only an ACTIVE model, known formats) are the service's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from ..deps import CallerDep, ServiceDep, call
from ..docs import errors_returned
from ..download import file_stream, tar_size, tar_stream

router = APIRouter(tags=["tunedModels"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": _BINARY, "application/x-tar": _BINARY}},
    **errors_returned(),
}


@router.get(
    "/tunedModels/{model_id}:export",
    summary="tunesmith's own: download a tuned model as a peft adapter, a merged folder, a "
    "GGUF file or a GGUF LoRA adapter",
    responses=_RESPONSES,
)
async def export_tuned_model(
    model_id: str,
    service: ServiceDep,
    caller: CallerDep,
    format: Annotated[str | None, Query(description="adapter, merged, gguf or gguf-lora")] = None,
    quantization: Annotated[
        str | None, Query(description="GGUF formats: F16 (default), BF16, Q8_0 or F32")
    ] = None,
    archive: Annotated[
        bool, Query(description="gguf: a tar with the Ollama Modelfile, not the bare file")
    ] = False,
):
    done = await call(
        service.exports.prepared_export, f"tunedModels/{model_id}", format, quantization, caller
    )
    if done.format == "gguf" and not archive:
        path = done.main_file
        headers = {
            "Content-Disposition": f'attachment; filename="{path.name}"',
            "Content-Length": str(path.stat().st_size),
        }
        return StreamingResponse(
            file_stream(path), media_type="application/octet-stream", headers=headers
        )
    top = f"{model_id}-{done.format}" + (f"-{done.quantization}" if done.quantization else "")
    members = [(f"{top}/{f.relative_to(done.folder)}", f) for f in done.files]
    headers = {
        "Content-Disposition": f'attachment; filename="{top}.tar"',
        "Content-Length": str(tar_size(members)),
    }
    return StreamingResponse(tar_stream(members), media_type="application/x-tar", headers=headers)
