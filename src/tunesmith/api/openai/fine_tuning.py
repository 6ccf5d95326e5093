"""``/fine_tuning/jobs``: create, list, retrieve, cancel, pause, resume, events, checkpoints.

A thin adapter over :class:`~tunesmith.service.fine_tuning.FineTuningService`, which maps
OpenAI's jobs onto tunesmith's tuning jobs (``ftjob-ID`` is ``tunedModels/ID``). Cancel,
pause and resume take no body (the client posts an empty one). A change that has happened is
never answered with a 5xx (the client would retry it): the service's errors are raised before
its side effect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request

from ...errors import InvalidArgument
from ...service.fine_tuning import FineTuningJob, FineTuningRequest, JobCheckpoint, JobEvent
from ..deps import Body, CallerDep, ServiceDep, call
from .pagination import Listing, list_json, page

router = APIRouter(tags=["openai: fine-tuning"])

_OBJECT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "object"}}}}
}
_HYPER = {
    "type": "object",
    "properties": {
        "n_epochs": {"oneOf": [{"type": "string", "enum": ["auto"]}, {"type": "integer"}]},
        "batch_size": {"oneOf": [{"type": "string", "enum": ["auto"]}, {"type": "integer"}]},
        "learning_rate_multiplier": {
            "oneOf": [{"type": "string", "enum": ["auto"]}, {"type": "number"}]
        },
    },
}
_CREATE = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "training_file"],
                    "properties": {
                        "model": {"type": "string"},
                        "training_file": {"type": "string"},
                        "validation_file": {"type": "string"},
                        "suffix": {"type": "string", "maxLength": 40},
                        "seed": {"type": "integer"},
                        "metadata": {"type": "object"},
                        "method": {
                            "type": "object",
                            "properties": {
                                "type": {"type": "string", "enum": ["supervised"]},
                                "supervised": {
                                    "type": "object",
                                    "properties": {"hyperparameters": _HYPER},
                                },
                            },
                        },
                        "hyperparameters": _HYPER,
                    },
                }
            }
        },
    }
}
_METADATA_QUERY = re.compile(r"^metadata\[(.+)\]$")


def job_json(j: FineTuningJob) -> dict:
    hp = {
        "n_epochs": j.n_epochs,
        "batch_size": j.batch_size,
        "learning_rate_multiplier": j.learning_rate_multiplier,
    }
    return {
        "id": j.id,
        "object": "fine_tuning.job",
        "created_at": j.created_at,
        "finished_at": j.finished_at,
        "model": j.model,
        "fine_tuned_model": j.fine_tuned_model,
        "organization_id": j.owner or "tunesmith",
        "status": j.status,
        "training_file": j.training_file,
        "validation_file": j.validation_file,
        "hyperparameters": hp,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hp}},
        "result_files": [],
        "trained_tokens": None,
        "error": j.error,
        "seed": j.seed,
        "suffix": j.suffix,
        "metadata": j.metadata,
        "estimated_finish": None,
        "integrations": [],
        # tunesmith's own: the same job in Google's dialect, and how far it is
        "tunesmith": {
            "operation": j.operation,
            "tuned_model": j.tuned_model,
            "completed_steps": j.trained_steps,
            "total_steps": j.total_steps,
        },
    }


def event_json(e: JobEvent) -> dict:
    return {
        "id": e.id,
        "object": "fine_tuning.job.event",
        "created_at": e.created_at,
        "level": e.level,
        "message": e.message,
        "type": e.type,
        "data": e.data,
    }


def checkpoint_json(c: JobCheckpoint) -> dict:
    return {
        "id": c.id,
        "object": "fine_tuning.job.checkpoint",
        "created_at": c.created_at,
        "fine_tuned_model_checkpoint": c.fine_tuned_model_checkpoint,
        "fine_tuning_job_id": c.fine_tuning_job_id,
        "step_number": c.step_number,
        "metrics": c.metrics,
    }


def create_request(body) -> FineTuningRequest:
    if not isinstance(body, Mapping):
        raise InvalidArgument("body: expected a JSON object")
    known = {f for f in FineTuningRequest.__dataclass_fields__}
    unknown = sorted(k for k in body if k not in known and k != "integrations")
    if unknown:
        raise InvalidArgument(f"{unknown[0]}: unknown field")
    if body.get("integrations"):
        raise InvalidArgument("integrations: not supported (tunesmith reports to no service)")
    for field in ("model", "training_file"):
        if field not in body:
            raise InvalidArgument(f"{field}: required")
    return FineTuningRequest(**{k: v for k, v in body.items() if k in known})


@router.post(
    "/fine_tuning/jobs",
    summary="Create a fine-tuning job (a tuning job of tunesmith's)",
    responses=_OBJECT,
    openapi_extra=_CREATE,
)
async def create_job(body: Body, service: ServiceDep, caller: CallerDep):
    req = create_request(body)
    return job_json(await call(service.fine_tuning.create, req, caller))


@router.get("/fine_tuning/jobs", summary="The caller's jobs, newest first", responses=_OBJECT)
async def list_jobs(request: Request, service: ServiceDep, caller: CallerDep, listing: Listing):
    metadata = {}
    for key, value in request.query_params.multi_items():
        m = _METADATA_QUERY.match(key)
        if m:
            metadata[m.group(1)] = value
    jobs = await call(service.fine_tuning.list, caller, metadata or None)
    chosen, more = page(jobs, listing, lambda j: j.id)
    return list_json([job_json(j) for j in chosen], more)


@router.get("/fine_tuning/jobs/{job_id}", summary="A job", responses=_OBJECT)
async def get_job(job_id: str, service: ServiceDep, caller: CallerDep):
    return job_json(await call(service.fine_tuning.get, job_id, caller))


@router.post("/fine_tuning/jobs/{job_id}/cancel", summary="Cancel a job", responses=_OBJECT)
async def cancel_job(job_id: str, service: ServiceDep, caller: CallerDep):
    return job_json(await call(service.fine_tuning.cancel, job_id, caller))


@router.post(
    "/fine_tuning/jobs/{job_id}/pause",
    summary="Pause a job (a running one stops at its next step, checkpointed)",
    responses=_OBJECT,
)
async def pause_job(job_id: str, service: ServiceDep, caller: CallerDep):
    return job_json(await call(service.fine_tuning.pause, job_id, caller))


@router.post(
    "/fine_tuning/jobs/{job_id}/resume",
    summary="Resume a paused job from its checkpoint",
    responses=_OBJECT,
)
async def resume_job(job_id: str, service: ServiceDep, caller: CallerDep):
    return job_json(await call(service.fine_tuning.resume, job_id, caller))


@router.get(
    "/fine_tuning/jobs/{job_id}/events", summary="A job's events, newest first", responses=_OBJECT
)
async def list_events(job_id: str, service: ServiceDep, caller: CallerDep, listing: Listing):
    events = await call(service.fine_tuning.events, job_id, caller)
    chosen, more = page(events, listing, lambda e: e.id)
    return list_json([event_json(e) for e in chosen], more)


@router.get(
    "/fine_tuning/jobs/{job_id}/checkpoints",
    summary="A job's checkpoints (one per epoch), newest first; each is a model name",
    responses=_OBJECT,
)
async def list_checkpoints(job_id: str, service: ServiceDep, caller: CallerDep, listing: Listing):
    found = await call(service.fine_tuning.checkpoints, job_id, caller)
    chosen, more = page(found, listing, lambda c: c.id)
    return list_json([checkpoint_json(c) for c in chosen], more)
