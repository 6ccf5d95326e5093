"""The installed CLI in real subprocesses, against a real ``tunesmith serve`` with an API key."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tunesmith.cli._common import FAILED, INTERRUPTED, NOT_ALLOWED, NOT_FOUND, OK, USAGE
from tunesmith_server import server_env, tunesmith, wait_done


@pytest.fixture()
def client_env(keyed_server, tmp_path):
    """What a user's shell has: the endpoint and key in the environment, another home."""
    server, key = keyed_server
    return server_env(
        tmp_path / "client-home", TUNESMITH_API_ENDPOINT=server.url, TUNESMITH_API_KEY=key
    )


def test_tune_against_the_server_then_generate(keyed_server, client_env, tmp_path):
    data = tmp_path / "numbers.jsonl"
    data.write_text("".join(json.dumps({"q": str(i), "a": str(i + 1)}) + "\n" for i in range(6)))
    tuned = tunesmith("tune", str(data), "--id", "remote-adder", "--input-key", "q",
                      "--output-key", "a", "--epochs", "1", "--batch-size", "3",
                      env=client_env)  # fmt: skip
    assert tuned.returncode == OK, tuned.stderr
    assert tuned.stdout.strip() == "tunedModels/remote-adder"
    assert "is ACTIVE" in tuned.stderr and "2/2" in tuned.stderr
    assert "Traceback" not in tuned.stderr

    server, key = keyed_server
    headers = {"x-goog-api-key": key}
    model = httpx.get(f"{server.url}/v1beta/tunedModels/remote-adder", headers=headers).json()
    assert model["state"] == "ACTIVE"  # really on the server, not in the client's home

    gen = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "generate", "remote-adder", "-", "--json",
         "--max-output-tokens", "3"],
        env=client_env, input="4", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert gen.returncode == OK, gen.stderr
    assert "output" in json.loads(gen.stdout)["candidates"][0]
    listed = tunesmith("models", "list", env=client_env)
    assert "remote-adder" in listed.stdout and "ACTIVE" in listed.stdout


def test_exit_codes_scripts_rely_on(keyed_server, client_env, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text_input,output\n1,2\n,4\n")
    r = tunesmith("tune", str(bad), env=client_env)
    assert r.returncode == USAGE and "training_data row 2: 'text_input' is empty" in r.stderr
    assert "Traceback" not in r.stderr
    assert tunesmith("models", "show", "missing", env=client_env).returncode == NOT_FOUND
    wrong_key = dict(client_env, TUNESMITH_API_KEY="ts-wrong")
    r = tunesmith("models", "list", env=wrong_key)
    assert r.returncode == NOT_ALLOWED and "Traceback" not in r.stderr
    # (unreachable servers and bad flags: test_cli_embedded, in-process, to keep this quick)


def test_ctrl_c_leaves_the_bar_not_the_job(keyed_server, client_env, tmp_path):
    server, key = keyed_server
    data = tmp_path / "many.csv"
    # Long enough (1,500 steps) that Ctrl-C lands mid-run even on a quiet, fast machine.
    data.write_text("text_input,output\n" + "".join(f"{i},{i + 1}\n" for i in range(100)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunesmith.cli", "tune", str(data), "--id", "long-run",
         "--epochs", "30", "--batch-size", "2"],
        env=client_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with httpx.Client(base_url=server.url, headers={"x-goog-api-key": key}, timeout=30) as http:
        deadline = time.monotonic() + 60
        while http.get("/v1beta/tunedModels/long-run").status_code != 200:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.2)
        time.sleep(1.0)  # the CLI is in its progress loop now
        assert proc.poll() is None, "the CLI ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == INTERRUPTED, err
        assert "keeps tuning" in err and "tunesmith models watch long-run" in err
        assert "Traceback" not in err
        # The job keeps tuning after the CLI has gone: its steps keep coming (waiting for
        # all 1,500 would cost a minute on a slow machine; cancelling proves the run was live).
        (op,) = http.get("/v1beta/tunedModels/long-run/operations").json()["operations"]
        seen = op["metadata"].get("completedSteps", 0)
        deadline = time.monotonic() + 120
        while _steps(http, op["name"]) <= seen:
            assert time.monotonic() < deadline, "no step after the CLI was interrupted"
            time.sleep(0.2)
        assert tunesmith("models", "cancel", "long-run", "--yes", env=client_env).returncode == OK
        op = wait_done(http, op["name"], timeout=120)
    assert op["error"]["code"] == 1, op  # CANCELLED
    assert seen < op["metadata"]["completedSteps"] < op["metadata"]["totalSteps"] == 1500

    watched = tunesmith("models", "watch", "long-run", "--json", env=client_env)
    assert watched.returncode == FAILED and json.loads(watched.stdout)["done"] is True


def _steps(http: httpx.Client, op_name: str) -> int:
    return http.get(f"/v1beta/{op_name}").json()["metadata"].get("completedSteps", 0)
