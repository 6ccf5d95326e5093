"""A fresh home's first run, over HTTP: the operation says "preparing base model (first run,
once)" with its own progress to the tunesmith SDK and to plain HTTP callers (tunesmith's
``metadata.phase``), never to Google's clients (they send ``x-goog-api-client``); wait_bar
and the CLI's progress line show it, then the steps."""

from __future__ import annotations

import io
import re
import threading
import time

import httpx
from rich.console import Console

import tunesmith as ts
from tunesmith.types import Phase

DATA = [{"text_input": str(i), "output": str(i + 1)} for i in range(4)]
PREPARING = "preparing base model (first run, once)"


def _create():
    # Google's model name: the server's default base, the tiny model as a GGUF file.
    return ts.create_tuned_model("models/text-bison-001", DATA, epoch_count=1, batch_size=2)


def _until(check, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_sdk_wait_bar_and_http_show_the_preparation_then_steps(preparing_server, held_conversion):
    ts.configure(api_endpoint=preparing_server)
    op = _create()
    shown = io.StringIO()
    # As the demo calls it: the caller's description and unit come back once the steps do.
    bar = threading.Thread(
        target=lambda: list(op.wait_bar(file=shown, mininterval=0, desc="tuning", unit="step"))
    )
    bar.start()
    assert held_conversion.reached.wait(120), "the base model's conversion did not start"

    # The SDK's record.
    meta = _until(lambda: (m := op.update()).phase and m.phase.progress and m, what="progress")
    assert meta.phase.name == Phase.PREPARING_BASE_MODEL and 0 < meta.phase.progress < 1
    assert meta.phase.description == PREPARING and meta.completed_steps == 0

    # Plain HTTP (curl, the console): the phase; Google's clients: Google's fields only.
    url = f"{preparing_server}/v1beta/{op.name}"
    plain = httpx.get(url).json()["metadata"]
    assert plain["phase"]["name"] == "PREPARING_BASE_MODEL"
    assert plain["phase"]["description"] == PREPARING and 0 < plain["phase"]["progress"] < 1
    google = httpx.get(url, headers={"x-goog-api-client": "genai-py/0.8.6"}).json()["metadata"]
    assert "phase" not in google and google["totalSteps"] == 2
    listed = httpx.get(f"{preparing_server}/v1beta/operations").json()["operations"]
    assert [o["metadata"]["phase"]["name"] for o in listed] == ["PREPARING_BASE_MODEL"]

    _until(lambda: PREPARING in shown.getvalue(), what="wait_bar to show the preparation")
    held_conversion.release()
    bar.join(timeout=120)
    assert not bar.is_alive()
    assert op.result().state.name == "ACTIVE"
    assert op.metadata.phase is None  # done
    final = shown.getvalue().split("\r")[-1]
    assert final.startswith("tuning: 100%") and "step" in final.split("2/2")[1]


def test_the_cli_progress_line_shows_the_preparation_then_steps(
    preparing_server, held_conversion, monkeypatch
):
    from tunesmith.cli import tune
    from tunesmith.sdk.remote import RemoteClient

    console = Console(file=io.StringIO(), force_terminal=True, width=140, record=True)
    monkeypatch.setattr(tune, "err_console", console)
    monkeypatch.setattr(tune, "POLL_SECONDS", 0.1)
    client = RemoteClient(preparing_server)
    op = ts.create_tuned_model("models/text-bison-001", DATA, epoch_count=1, batch_size=2,
                               client=client)  # fmt: skip
    codes = []
    follow = threading.Thread(target=lambda: codes.append(tune.follow(op, client)))
    follow.start()
    assert held_conversion.reached.wait(120)
    # Its own progress, in percent, where the steps will be.
    shown = _until(
        lambda: re.search(rf"{re.escape(PREPARING)}\s.*\s(\d+)%\s+loss", _screen(console)),
        what="the progress line to show the preparation",
    )
    assert 0 < int(shown.group(1)) < 100
    held_conversion.release()
    follow.join(timeout=120)
    assert codes == [0]
    assert "done" in _screen(console) and "2/2 steps" in _screen(console)


def _screen(console: Console) -> str:
    return console.export_text(clear=False)
