"""The model page's Download menu, in a real browser against a real server with an API key."""

from __future__ import annotations

import httpx
import pytest

from tunesmith_server import wait_done


@pytest.fixture()
def page(browser, keyed_server):
    server, key = keyed_server
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.url + "/")
    pg.wait_for_selector("#key-dialog[open]")
    pg.fill("#key-input", key)
    pg.click("#key-dialog button[value=save]")
    pg.wait_for_function("document.getElementById('key-state').textContent === 'set'")
    yield pg
    context.close()
    assert not errors, errors


def test_an_active_model_offers_its_exports(page, keyed_server, tmp_path, artifacts):
    server, key = keyed_server
    examples = [{"textInput": str(i), "output": str(i + 1)} for i in range(1, 9)]
    body = {
        "baseModel": "models/text-bison-001",
        "tuningTask": {
            "hyperparameters": {"epochCount": 1, "batchSize": 4},
            "trainingData": {"examples": {"examples": examples}},
        },
    }
    with httpx.Client(base_url=server.url, headers={"x-goog-api-key": key}, timeout=60) as http:
        op = http.post("/v1beta/tunedModels", params={"tunedModelId": "to-download"}, json=body)
        assert op.status_code == 200, op.text
        assert "error" not in wait_done(http, op.json()["name"])

    page.goto(server.url + "/#/models/to-download")
    page.wait_for_selector(".badge.active")
    page.click("#download summary")
    page.screenshot(path=artifacts / "console-download.png", full_page=True)
    with page.expect_download() as gguf:
        page.click("#download button[data-export='format=gguf&quantization=Q8_0']")
    assert gguf.value.suggested_filename == "to-download-Q8_0.gguf"
    saved = tmp_path / gguf.value.suggested_filename
    gguf.value.save_as(saved)
    assert saved.read_bytes()[:4] == b"GGUF"

    page.click("#download summary")
    with page.expect_download() as tar:
        page.click("#download button[data-export='format=adapter']")
    assert tar.value.suggested_filename == "to-download-adapter.tar"
    page.wait_for_selector(".toast >> text=Downloaded to-download-adapter.tar")
