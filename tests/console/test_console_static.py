"""The console is static files served by the app, and it only speaks the public API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

STATIC = Path(__file__).resolve().parents[2] / "src/tunesmith/api/console/static"


@pytest.fixture()
def client(home):
    from tunesmith.api import create_app
    from tunesmith.settings import get_settings

    with TestClient(create_app(get_settings(), worker=False)) as c:
        yield c


def test_page_and_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<main id="view"' in page.text
    for name in re.findall(r'(?:src|href)="/console/([^"]+)"', page.text):
        assert client.get(f"/console/{name}").status_code == 200, name
    js = client.get("/console/app.js")
    assert "javascript" in js.headers["content-type"]
    assert client.get("/console/__init__.py").status_code == 404  # only the static folder
    assert "/" not in client.get("/openapi.json").json()["paths"]


def test_the_browser_uses_only_the_public_api():
    sources = {p.name: p.read_text() for p in STATIC.glob("*.js")}
    callers = [name for name, text in sources.items() if "fetch(" in text]
    assert callers == ["api.js"]
    assert "fetch(`/v1beta/${path}`" in sources["api.js"]
    assert "x-goog-api-key" in sources["api.js"] and "localStorage" in sources["api.js"]
    for text in sources.values():  # no CDN, no network but the server itself
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)
