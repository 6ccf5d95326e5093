"""The FastAPI application: ``create_app(settings)`` builds everything when called.

Nothing (settings, database engine, worker) is created at import time. By default an
in-process worker thread runs tuning jobs, woken by the service each time one is queued;
``worker=False`` leaves jobs to ``tunesmith worker`` processes.

Callers over HTTP name only the base models the operator offers (the service's rule,
:mod:`tunesmith.service.catalog`); ``offered_base_models_only=False`` is for a server whose
only caller is the user of the machine it runs on.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..jobs.worker import Worker
from ..service import Service
from ..settings import Settings, get_settings
from ..store.keys import KeyStore
from . import apidocs, console, errors, limits, openai
from .pretty import PrettyJSONResponse
from .routes import ROUTERS

log = logging.getLogger("tunesmith.api")

VERSIONS = ("/v1beta", "/v1beta3", "/v1")


def create_app(
    settings: Settings | None = None,
    *,
    worker: bool = True,
    offered_base_models_only: bool = True,
    hub_api=None,
) -> FastAPI:
    settings = settings or get_settings()
    wake = threading.Event()
    service = Service(
        settings,
        on_enqueue=wake.set if worker else None,
        offered_base_models_only=offered_base_models_only,
        hub_api=hub_api,
    )
    keys = KeyStore(service.store)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        runner = thread = None
        if worker:
            # transformers' lazy imports are not thread-safe: the worker thread and a request
            # thread importing it at once failed a tuning job with "cannot import name
            # 'AutoTokenizer'" under load (benchmarks/load.py). Import it once, first.
            await run_in_threadpool(_preload_transformers)
            runner = Worker(settings, service.store)
            runner.wake = wake
            thread = threading.Thread(target=runner.run, name="tunesmith-worker", daemon=True)
            thread.start()
        app.state.worker = runner
        try:
            yield
        finally:
            if runner is not None:
                # A running job pauses at its next step, checkpointed, and goes back to the
                # queue; whatever is still running after the wait is left to its lease.
                runner.shutdown()
                await run_in_threadpool(thread.join, 30)
            service.close()

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
    app.state.service = service
    app.state.keys = keys
    app.state.settings = settings
    errors.install(app)
    limits.install(app, settings)  # body size and requests per minute per key
    for prefix in VERSIONS:
        for router in ROUTERS:
            app.include_router(router, prefix=prefix)
    app.include_router(openai.router, prefix=openai.PREFIX)  # OpenAI's dialect, beside them

    @app.get("/healthz", tags=["health"], summary="Liveness: the server answers")
    async def healthz():
        running = getattr(app.state, "worker", None) is not None
        return {"status": "ok", "version": __version__, "worker": running}

    apidocs.mount(app)  # /docs and /redoc, their files served from here, not a CDN
    console.mount(app)  # the web console at /, a client of the routes above like any other
    return app


def _preload_transformers() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401
