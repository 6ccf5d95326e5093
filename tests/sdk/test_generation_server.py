"""The embedded SDK's generation goes to the home's generation server: a script never loads
torch, its answers (whole, streamed, counted) are the same as in-process ones, and when the
server cannot answer, the call is answered in the script's own process instead."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

import tunesmith as ts
from tunesmith.jobs.embedded import generation_paths
from tunesmith.settings import get_settings

SCRIPT = """
import json, sys
import tunesmith as ts

model = ts.GenerativeModel("models/text-bison-001", {"temperature": 0, "max_output_tokens": 6})
print(json.dumps({
    "whole": model.generate_content("one two").text,
    "streamed": "".join(c.text for c in model.generate_content("one two", stream=True)),
    "text": ts.generate_text(model="models/text-bison-001", prompt="one two", temperature=0,
                             max_output_tokens=6).result,
    "tokens": model.count_tokens("one two")["total_tokens"],
    "torch": "torch" in sys.modules,
}))
"""


@pytest.fixture()
def tiny_home(home, tiny_model_dir, monkeypatch):
    """An empty home whose default base model is tiny; its generation servers are stopped
    at the end."""
    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_model_dir))
    yield home
    for lock in (home / "run").glob("generation-*.lock"):
        pid = int(lock.read_text() or 0)
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass


def test_a_script_generates_through_the_server_without_loading_torch(tiny_home):
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr  # and the script exits cleanly
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["torch"] is False
    assert got["whole"] == got["streamed"] == got["text"]

    here = ts.EmbeddedClient(generation_server=False)
    model = ts.GenerativeModel("models/text-bison-001", {"temperature": 0, "max_output_tokens": 6},
                               client=here)  # fmt: skip
    assert model.generate_content("one two").text == got["whole"]
    assert model.count_tokens("one two")["total_tokens"] == got["tokens"] > 0

    log = (tiny_home / "logs" / "generation.log").read_text()
    for verb in ("generateContent", "streamGenerateContent", "countTokens"):
        assert re.search(rf":{verb}\S* HTTP/1\.1\" 200", log), verb


def test_when_the_server_cannot_start_this_process_answers(tiny_home, caplog):
    _, sock = generation_paths(get_settings())
    sock.mkdir(parents=True)  # a folder where its socket goes: the server cannot listen
    client = ts.EmbeddedClient()
    try:
        with caplog.at_level(logging.WARNING, logger="tunesmith.sdk"):
            got = ts.generate_text(model="models/text-bison-001", prompt="one two",
                                   temperature=0, max_output_tokens=4, client=client)  # fmt: skip
    finally:
        sock.rmdir()
    assert isinstance(got.result, str)
    assert client.service.generation._server is not None  # the model was loaded here
    assert "the generation server did not start" in caplog.text
    assert "Traceback" in (tiny_home / "logs" / "generation.log").read_text()  # why, for people


def test_requests_the_api_cannot_carry_are_answered_here(tiny_home, tiny_model_dir):
    client = ts.EmbeddedClient()
    # A base model named by its folder is not one path segment: no route takes it.
    got = ts.generate_text(model=str(tiny_model_dir), prompt="one two", temperature=0,
                           max_output_tokens=2, client=client)  # fmt: skip
    assert isinstance(got.result, str)
    # A NaN is not JSON; the service judges it here, as it would anywhere.
    with pytest.raises(ts.InvalidArgument, match="temperature"):
        ts.generate_text(model="models/text-bison-001", prompt="one", temperature=float("nan"),
                         client=client)  # fmt: skip
    assert not (tiny_home / "run").exists()  # no server was started for either
