"""Faults against a real server on the tiny model: each ends in a clear state and message.

* SIGKILL of the server (and its in-process worker) while clients create models: after a
  restart every acknowledged create is there and ends ACTIVE or FAILED with a reason.
* A full disk while saving an adapter: ``adapters/`` is a real tmpfs of 64 KiB, filled up
  (``mount -t tmpfs``, as root; skipped where mounting is not allowed).
* A corrupted adapter file: generation answers a clear error, not a 500.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tunesmith_server import Server, server_env, wait_done

FAST = {"TUNESMITH_LEASE_SECONDS": "3", "TUNESMITH_MAX_JOBS_PER_USER": "0"}


def body(n: int = 2) -> dict:
    rows = [{"textInput": str(i), "output": str(i + 1)} for i in range(n)]
    return {
        "baseModel": "models/text-bison-001",
        "tuningTask": {
            "hyperparameters": {"epochCount": 1, "batchSize": 1},
            "trainingData": {"examples": {"examples": rows}},
        },
    }


def settle(url: str, names: list[str], timeout: float = 240) -> dict[str, dict]:
    with httpx.Client(base_url=url, timeout=30) as c:
        return {name: wait_done(c, name, timeout) for name in names}


def test_sigkill_of_the_server_loses_no_acknowledged_create(tmp_path, tiny_model_dir):
    env = server_env(tmp_path, str(tiny_model_dir), **FAST)
    server = Server(tmp_path, env)
    acknowledged: list[str] = []

    def create(i: int) -> str | None:
        try:
            r = httpx.post(
                f"{server.url}/v1beta/tunedModels",
                params={"tunedModelId": f"k{i}"},
                json=body(),
                timeout=10,
            )
        except httpx.HTTPError:
            return None  # not acknowledged: the server died first
        return r.json()["name"] if r.status_code == 200 else None

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(create, i) for i in range(16)]
        time.sleep(1.0)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        acknowledged = [n for f in futures if (n := f.result()) is not None]
    server.stop()
    assert acknowledged, "nothing was acknowledged before the kill"

    again = Server(tmp_path, env)
    try:
        done = settle(again.url, acknowledged)
        for name, op in done.items():
            if "error" in op:
                assert op["error"]["message"], name
            else:
                assert op["response"]["state"] == "ACTIVE", name
        models = httpx.get(f"{again.url}/v1beta/tunedModels", params={"pageSize": 100}).json()
        for m in models["tunedModels"]:  # unacknowledged creates may exist too: all settled
            assert m["state"] in ("ACTIVE", "FAILED", "CREATING"), m
    finally:
        again.stop()


@pytest.fixture()
def full_adapters_dir(tmp_path):
    adapters = tmp_path / "home" / "adapters"
    adapters.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(adapters)])
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        fd = os.open(adapters / "filler", os.O_WRONLY | os.O_CREAT)
        try:  # fill it to the last byte
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        yield tmp_path / "home"
    finally:
        subprocess.run(["umount", "-l", str(adapters)])


def test_full_disk_while_saving_an_adapter(full_adapters_dir, tiny_model_dir):
    home = full_adapters_dir
    server = Server(home, server_env(home, str(tiny_model_dir), **FAST))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            r = c.post("/v1beta/tunedModels", params={"tunedModelId": "full"}, json=body())
            assert r.status_code == 200, r.text
            op = wait_done(c, r.json()["name"], 240)
            assert "error" in op, op
            assert "space" in op["error"]["message"].lower(), op["error"]
            model = c.get("/v1beta/tunedModels/full").json()
            assert model["state"] == "FAILED"
            r = c.post("/v1beta/tunedModels/full:generateText", json={"prompt": {"text": "1"}})
            assert r.status_code == 400 and "FAILED" in r.json()["error"]["message"]
        # The server keeps working for everything else.
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    finally:
        server.stop()


def test_a_corrupted_adapter_answers_a_clear_error(tmp_path, tiny_model_dir):
    server = Server(tmp_path, server_env(tmp_path, str(tiny_model_dir), **FAST))
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            r = c.post("/v1beta/tunedModels", params={"tunedModelId": "bent"}, json=body())
            op = wait_done(c, r.json()["name"], 240)
            assert op.get("response", {}).get("state") == "ACTIVE", op
            op_id = op["name"].rsplit("/", 1)[-1]
            files = list(Path(tmp_path, "adapters", op_id).glob("*.safetensors"))
            assert files, list(Path(tmp_path, "adapters").rglob("*"))
            for f in files:
                f.write_bytes(os.urandom(64))
            r = c.post("/v1beta/tunedModels/bent:generateText", json={"prompt": {"text": "1"}})
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["status"] == "FAILED_PRECONDITION" and "adapter" in err["message"]
            # Other models still generate.
            r = c.post(
                "/v1beta/models/text-bison-001:generateText",
                json={"prompt": {"text": "1"}, "maxOutputTokens": 2},
            )
            assert r.status_code == 200, r.text
    finally:
        server.stop()
