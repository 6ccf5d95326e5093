"""The API reference pages (/docs, /redoc) work without internet: everything they load comes
from the server itself. Checked in chromium with every request to another host refused."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Paths the reference must show, from each API version.
PATHS = [
    "/v1beta/tunedModels",
    "/v1beta/tunedModels/{model_id}",
    "/v1beta3/tunedModels/{model_id}/operations/{operation_id}",
    "/v1/tunedModels/{model_id}:generateContent",
]


@pytest.fixture()
def client(home):
    from tunesmith.api import create_app
    from tunesmith.settings import get_settings

    with TestClient(create_app(get_settings(), worker=False)) as c:
        yield c


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_pages_name_only_files_of_this_server(client, page):
    html = client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert not re.findall(r"https?://", html.text), "a page that loads from another host"
    # and whatever a bundled script names, the browser may load from this server only
    policy = html.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    loaded = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert any(url.endswith(".js") for url in loaded), loaded
    for url in loaded:
        if url.startswith("data:"):
            continue
        assert url.startswith("/docs/assets/"), url
        got = client.get(url)
        assert got.status_code == 200 and len(got.content) > 1000, url
    assert "/docs" not in client.get("/openapi.json").json()["paths"]


@pytest.fixture()
def offline(browser):
    """A browser page that refuses (and records) every request not to a loopback address."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def guard(route):
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            outside.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page, outside
    context.close()
    assert not errors, errors


def test_the_consoles_api_docs_link_shows_the_routes_offline(offline, server, artifacts):
    page, outside = offline
    page.goto(server.url + "/")
    with page.expect_navigation():
        page.click("footer a:text-is('API docs')")
    assert urlsplit(page.url).path == "/docs"
    page.wait_for_selector(".swagger-ui .opblock")
    for path in PATHS:
        assert page.locator(f".opblock-summary-path[data-path='{path}']").count() >= 1, path
    assert page.locator(".swagger-ui .title").first.inner_text().startswith("tunesmith")
    page.screenshot(path=artifacts / "api-docs.png")
    assert outside == [], f"requests to other hosts: {outside}"


def test_redoc_shows_the_routes_offline(offline, server, artifacts):
    page, outside = offline
    page.goto(server.url + "/redoc")
    page.wait_for_selector("h2:has-text('Create a tuned model; answers with its long-running')")
    text = page.inner_text("body")
    for path in PATHS:
        assert path in text, path
    page.screenshot(path=artifacts / "api-redoc.png")
    assert outside == [], f"requests to other hosts: {outside}"
