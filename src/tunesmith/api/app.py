"""The FastAPI application: ``create_app(settings)`` builds everything when called.

Nothing (settings, database engine, worker) is created at import time; the parts are built
by the composition root, :class:`tunesmith.runtime.Runtime`. By default a supervised worker
process runs tuning jobs (:mod:`tunesmith.jobs.supervisor`), woken each time one is queued;
``worker=False`` leaves jobs to ``tunesmith worker`` processes, ``worker="thread"`` runs them
in a thread of this process.

Callers over HTTP name only the base models the operator offers (the service's rule,
:mod:`tunesmith.service.catalog`); ``offered_base_models_only=False`` is for a server whose
only caller is the user of the machine it runs on.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from ..runtime import Runtime, WorkerKind
from ..settings import Settings, get_settings
from ..version import __version__
from . import apidocs, console, errors, limits, openai
from .pretty import PrettyJSONResponse
from .routes import ROUTERS

log = logging.getLogger("tunesmith.api")

VERSIONS = ("/v1beta", "/v1beta3", "/v1")


def create_app(
    settings: Settings | None = None,
    *,
    worker: bool | WorkerKind = True,
    offered_base_models_only: bool = True,
    hub_api: Any = None,
) -> FastAPI:
    """``worker``: True (a supervised worker process), ``"thread"``, or False (none)."""
    runtime = Runtime(
        settings or get_settings(),
        worker="process" if worker is True else (worker or None),
        offered_base_models_only=offered_base_models_only,
        hub_api=hub_api,
    )
    settings, service = runtime.settings, runtime.service

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(runtime.start_worker)
        try:
            yield
        finally:
            # A running job pauses at its next step, checkpointed, and goes back to the
            # queue; whatever is still running after the wait is left to its lease.
            await run_in_threadpool(runtime.close)

    app = FastAPI(
        title="tunesmith",
        version=__version__,
        description=(
            "Self-hosted model tuning with Google's Generative Language tuning API "
            "(tunedModels, operations, generateText / generateContent), and OpenAI's "
            "dialect under /openai/v1 (chat completions, completions, models)."
        ),
        lifespan=lifespan,
        default_response_class=PrettyJSONResponse,
        docs_url=None,  # FastAPI's pages load from CDNs: apidocs serves both from here
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.service = service
    app.state.settings = settings
    errors.install(app)
    limits.install(app, settings)  # body size and requests per minute per key
    for prefix in VERSIONS:
        for router in ROUTERS:
            app.include_router(router, prefix=prefix)
    app.include_router(openai.router, prefix=openai.PREFIX)  # OpenAI's dialect, beside them

    @app.get("/healthz", tags=["health"], summary="Liveness: the server answers")
    async def healthz():
        return {"status": "ok", "version": __version__, "worker": runtime.worker_running}

    apidocs.mount(app)  # /docs and /redoc, their files served from here, not a CDN
    console.mount(app)  # the web console at /, a client of the routes above like any other
    return app
