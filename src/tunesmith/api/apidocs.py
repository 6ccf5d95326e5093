"""The API reference pages: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), both drawn from
``/openapi.json``.

FastAPI's own pages load their scripts, styles, favicon and fonts from CDNs, so without
internet they stay blank. These load everything from this server: the scripts and styles come
from the ``fastapi-offline`` package (Swagger UI 5 and ReDoc, MIT / Apache-2.0), served under
``/docs/assets``; the favicon is inline; no web fonts; Swagger UI's online validator badge
(which would call validator.swagger.io) is off. And since a bundled script may still name
another host (ReDoc's footer shows a logo from its CDN), each page carries a
Content-Security-Policy that lets the browser load from this server only. The app is built
with ``docs_url=None`` and ``redoc_url=None`` so FastAPI's pages are never there.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
NO_FAVICON = "data:,"  # as the console: no request for an icon
# Both pages start their viewer with an inline script and style it inline; ReDoc runs its
# search in a worker made from a blob. Nothing may come from another host.
OWN_HOST_ONLY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
    ]
)


def _own_host_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["content-security-policy"] = OWN_HOST_ONLY
    return page


def assets_dir() -> Path:
    """The folder of Swagger UI's and ReDoc's files inside the fastapi-offline package."""
    return Path(str(importlib.resources.files("fastapi_offline") / "static"))


def mount(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their files from this server."""
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=NO_FAVICON,
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _own_host_only(page)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=NO_FAVICON,
            with_google_fonts=False,
        )
        return _own_host_only(page)
