"""The web console: static HTML, CSS and JavaScript served at ``/``.

It talks to the server only through the public API (``/v1beta/...`` with the key in
``x-goog-api-key``), exactly as any other client; there is no private route.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def mount(app: FastAPI) -> None:
    """Serve the console: ``/`` is the page, ``/console/*`` its files."""
    app.mount("/console", StaticFiles(directory=STATIC), name="console")

    @app.get("/", include_in_schema=False)
    async def console_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})
