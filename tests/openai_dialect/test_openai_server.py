"""The OpenAI dialect over a real socket: ``tunesmith serve`` with API keys, a model tuned
through Google's routes used and deleted through OpenAI's client, the newest ``openai``
(pinned in the test extras) and one 2.x release (installed once, without its dependencies,
into the test cache, and run in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from tunesmith_server import Server, server_env, tunesmith, wait_done

OLD_OPENAI = "2.54.0"
CACHE = Path(os.environ.get("TUNESMITH_TEST_CACHE") or Path(__file__).parents[2] / ".test-cache")


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    """A server with keys for alice and bob, and alice's tuned model (made through Google's
    routes) named ``ft:...`` for OpenAI's client."""
    home = tmp_path_factory.mktemp("openai-server-home")
    env = server_env(home, str(tiny_model_dir))
    keys = {}
    for user in ("alice", "bob"):
        r = tunesmith("keys", "create", f"{user}-key", "--user", user, env=env)
        assert r.returncode == 0, r.stderr
        keys[user] = r.stdout.strip()
    s = Server(home, env)
    body = {
        "baseModel": "models/tiny",
        "displayName": "count up",
        "tuningTask": {
            "hyperparameters": {"epochCount": 1, "batchSize": 4},
            "trainingData": {
                "examples": {
                    "examples": [{"textInput": f"{i}", "output": f"{i + 1}"} for i in range(8)]
                }
            },
        },
    }
    with httpx.Client(base_url=s.url, headers={"x-goog-api-key": keys["alice"]}, timeout=60) as g:
        r = g.post("/v1beta/tunedModels", params={"tunedModelId": "counter"}, json=body)
        assert r.status_code == 200, r.text
        assert "response" in wait_done(g, r.json()["name"])
    yield s, keys
    s.stop()


def client(served, user: str) -> openai.OpenAI:
    server, keys = served
    return openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key=keys[user], max_retries=0)


FT = "ft:tiny:alice:count-up:ftjob-counter"


def test_chat_over_a_socket_streamed_and_not(served):
    alice = client(served, "alice")
    assert FT in [m.id for m in alice.models.list()]
    ask = [{"role": "user", "content": "3"}]
    whole = alice.chat.completions.create(model=FT, messages=ask, max_tokens=8, temperature=0)
    chunks = alice.chat.completions.create(
        model=FT, messages=ask, max_tokens=8, temperature=0, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    with pytest.raises(openai.NotFoundError):
        client(served, "bob").chat.completions.create(model=FT, messages=ask)


OLD_CLIENT = """
import json, sys
import openai
c = openai.OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0)
ask = [{"role": "user", "content": "3"}]
whole = c.chat.completions.create(model=sys.argv[3], messages=ask, max_tokens=6, temperature=0)
parts = c.chat.completions.create(
    model=sys.argv[3], messages=ask, max_tokens=6, temperature=0, stream=True
)
streamed = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
done = c.completions.create(model="tiny", prompt="1", max_tokens=3)
try:
    c.models.retrieve("tunedModels/nothing")
    missing = None
except openai.NotFoundError as e:
    missing = e.body
print(json.dumps({
    "version": openai.__version__,
    "ids": [m.id for m in c.models.list()],
    "whole": whole.choices[0].message.content,
    "streamed": streamed,
    "completion_tokens": done.usage.completion_tokens,
    "missing": missing,
}))
"""


def old_openai() -> Path:
    """openai 2.x, installed once into the test cache (without dependencies: those of the
    newest release serve it, but for ``distro``)."""
    folder = CACHE / f"openai-{OLD_OPENAI}"
    if not (folder / "openai" / "__init__.py").is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(folder)]
            + [f"openai=={OLD_OPENAI}", "distro>=1.7,<2"],  # the one it needs that 3.x does not
            check=True,
            timeout=600,
        )
    return folder


def test_openai_2x_client(served):
    server, keys = served
    env = {**os.environ, "PYTHONPATH": str(old_openai())}
    r = subprocess.run(
        [sys.executable, "-c", OLD_CLIENT, f"{server.url}/openai/v1", keys["alice"], FT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["version"] == OLD_OPENAI
    assert FT in out["ids"] and "tiny" in out["ids"]
    assert out["whole"] == out["streamed"] and out["completion_tokens"] > 0
    assert out["missing"]["type"] == "invalid_request_error"


def test_delete_through_openai_is_gone_for_google_too(served):
    server, keys = served
    alice = client(served, "alice")
    with pytest.raises(openai.NotFoundError):
        client(served, "bob").models.delete(FT)
    deleted = alice.models.delete("tunedModels/counter")
    assert (deleted.id, deleted.deleted) == (FT, True)
    r = httpx.get(
        f"{server.url}/v1beta/tunedModels/counter", headers={"x-goog-api-key": keys["alice"]}
    )
    assert r.status_code == 404
    assert FT not in [m.id for m in alice.models.list()]
