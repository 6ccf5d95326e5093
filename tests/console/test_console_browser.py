"""The web console in a real browser, against a real server with an API key."""

from __future__ import annotations

import time

import httpx
import pytest

ACTIVE_TIMEOUT_MS = 240_000


@pytest.fixture()
def page(browser, keyed_server):
    server, key = keyed_server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.url + "/")
    # The key is asked for once, then kept in the browser's storage.
    pg.wait_for_selector("#key-dialog[open]")
    pg.fill("#key-input", key)
    pg.click("#key-dialog button[value=save]")
    pg.wait_for_function("document.getElementById('key-state').textContent === 'set'")
    yield pg
    context.close()
    assert not errors, errors


def test_tune_from_an_uploaded_file_then_generate(
    page, keyed_server, tiny_model_dir, artifacts, tmp_path
):
    server, _ = keyed_server
    data = tmp_path / "numbers.csv"
    data.write_text("text_input,output\n" + "".join(f"{i},{i + 1}\n" for i in range(1, 9)))
    page.reload()  # the key survives a reload: no dialog this time
    page.wait_for_selector("h1:has-text('Tuned models')")
    assert not page.is_visible("#key-dialog")

    page.click("text=New tuning >> nth=0")
    page.wait_for_selector("h1:has-text('New tuning')")
    page.set_input_files("#file", str(data))
    page.wait_for_selector("#preview >> text=8 examples")
    assert page.locator("#preview tbody tr").count() == 5  # the first rows
    page.fill("#base-model", str(tiny_model_dir))
    page.fill("#display-name", "browser adder")
    page.fill("#id", "browser-adder")
    page.fill("#epochs", "2")
    page.fill("#batch-size", "2")
    page.fill("#learning-rate", "0.01")
    page.screenshot(path=artifacts / "console-create.png", full_page=True)
    page.click("#start")

    page.wait_for_url("**/#/models/browser-adder")
    page.wait_for_selector(".badge.active", timeout=ACTIVE_TIMEOUT_MS)
    page.wait_for_selector(".chart path.line")
    assert page.locator(".progress-text").first.inner_text() == "8/8 steps"
    assert "Learning rate" in page.inner_text(".details") and "0.01" in page.inner_text(".details")

    page.fill("#prompt", "3")
    page.fill("#temperature", "1")
    page.fill("#candidates", "2")
    page.fill("#max-tokens", "8")
    page.click("#generate")
    page.wait_for_selector("#outputs >> text=2 candidates")
    assert page.locator("#outputs .candidate").count() == 2
    page.screenshot(path=artifacts / "console-model.png", full_page=True)

    page.click("text=← Tuned models")
    page.wait_for_selector("tr[data-model=browser-adder] .badge.active")
    page.screenshot(path=artifacts / "console-list.png", full_page=True)
    page.set_viewport_size({"width": 375, "height": 800})  # a phone
    page.screenshot(path=artifacts / "console-list-narrow.png", full_page=True)
    page.goto(server.url + "/#/models/browser-adder")
    page.wait_for_selector(".badge.active")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a narrow screen ({width}px)"
    page.screenshot(path=artifacts / "console-model-narrow.png", full_page=True)


def test_bad_rows_and_fields_are_shown(page, tiny_model_dir, artifacts, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "".join(f'{{"text_input": "{i}", "output": "{i + 1}"}}\n' for i in range(6))
        + '{"text_input": "7", "output": ""}\n'
    )
    page.goto(page.url.split("#")[0] + "#/new")
    page.set_input_files("#file", str(bad))
    # The preview flags row 7 (past the first five rows) before anything is sent...
    page.wait_for_selector("#preview tr.bad >> text='output' is empty")
    page.fill("#base-model", str(tiny_model_dir))
    page.click("#start")
    # ...and the server's answer names it too.
    page.wait_for_selector("#form-error >> text=training_data row 7: 'output' is empty")
    assert page.locator("#preview tr.bad[data-row='7']").count() == 1

    page.fill("#paste", "text_input,output\n1,2\n3,4\n")
    page.wait_for_selector("#preview >> text=2 examples")
    page.fill("#epochs", "0")
    page.fill("#id", "Bad Id")
    page.click("#start")
    page.wait_for_selector("#epochs-error >> text=epoch_count")
    assert "tuned_model_id" in page.inner_text("#id-error")
    assert "invalid" in page.get_attribute("#epochs", "class")
    page.screenshot(path=artifacts / "console-errors.png", full_page=True)


def test_cancel_and_delete_ask_first(page, keyed_server, tiny_model_dir, artifacts):
    server, key = keyed_server
    rows = [{"textInput": str(i), "output": str(i + 1)} for i in range(50)]
    body = {
        "baseModel": str(tiny_model_dir),
        "displayName": "long one",
        "tuningTask": {
            "hyperparameters": {"epochCount": 100, "batchSize": 1},
            "trainingData": {"examples": {"examples": rows}},
        },
    }
    created = httpx.post(
        f"{server.url}/v1beta/tunedModels?tunedModelId=long-one",
        json=body,
        headers={"x-goog-api-key": key},
    )
    assert created.status_code == 200, created.text
    page.goto(server.url + "/#/models/long-one")
    # Created without a learning rate: the page shows the one the run uses, LoRA's default.
    rate = page.locator(".details dt:text-is('Learning rate') + dd")
    assert rate.inner_text() == "0.002"
    page.click("text=Cancel tuning")
    page.wait_for_selector("#confirm-dialog[open]")
    page.click("#confirm-dialog button[value=cancel]")  # "Keep it"
    assert page.locator(".badge.creating").count() == 1
    page.click("text=Cancel tuning")
    page.click("#confirm-ok")
    page.wait_for_selector(".badge.cancelled")
    page.wait_for_selector("text=The tuning was cancelled.")
    page.screenshot(path=artifacts / "console-cancelled.png", full_page=True)

    page.click("button:has-text('Delete')")
    page.click("#confirm-ok")
    page.wait_for_selector("h1:has-text('Tuned models')")
    assert page.locator("tr[data-model=long-one]").count() == 0
    gone = httpx.get(f"{server.url}/v1beta/tunedModels/long-one", headers={"x-goog-api-key": key})
    assert gone.status_code == 404


def test_a_run_that_ends_between_the_pages_two_reads_still_shows_active(
    page, keyed_server, tiny_model_dir
):
    """The model page reads the model and its operation side by side; a run that ends between
    the two reads gives a CREATING model beside a done operation. The page reads again
    rather than show CREATING for good."""
    server, key = keyed_server
    headers = {"x-goog-api-key": key}
    rows = [{"textInput": str(i), "output": str(i + 1)} for i in range(4)]
    body = {
        "baseModel": str(tiny_model_dir),
        "tuningTask": {
            "hyperparameters": {"epochCount": 1, "batchSize": 2},
            "trainingData": {"examples": {"examples": rows}},
        },
    }
    url = f"{server.url}/v1beta/tunedModels"
    created = httpx.post(f"{url}?tunedModelId=quick-one", json=body, headers=headers)
    assert created.status_code == 200, created.text
    deadline = time.monotonic() + ACTIVE_TIMEOUT_MS / 1000
    while httpx.get(f"{url}/quick-one", headers=headers).json()["state"] != "ACTIVE":
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.2)
    reads = []

    def model_read_before_the_run_ended(route):
        reads.append(route.request.url)
        if len(reads) > 1:
            return route.continue_()
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), "state": "CREATING"})

    page.route("**/v1beta/tunedModels/quick-one", model_read_before_the_run_ended)
    page.goto(server.url + "/#/models/quick-one")
    page.wait_for_selector(".badge.active")
    assert len(reads) > 1


def test_a_late_unauthenticated_answer_keeps_the_key_being_typed(browser, keyed_server):
    """The list page's requests fail together without a key; an answer that comes after the
    dialog is open (and the user typing) must not wipe the input."""
    server, key = keyed_server
    context = browser.new_context()
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    try:
        pg.goto(server.url + "/")
        pg.wait_for_selector("#key-dialog[open]")
        pg.fill("#key-input", key)
        pg.evaluate(
            """() => window.dispatchEvent(new CustomEvent("tunesmith:unauthenticated",
                   { detail: { message: "API key not valid" } }))"""
        )
        assert pg.input_value("#key-input") == key
        pg.click("#key-dialog button[value=save]")
        pg.wait_for_function("document.getElementById('key-state').textContent === 'set'")
        pg.wait_for_selector("h1:has-text('Tuned models')")
    finally:
        context.close()
