"""A server started with --no-worker: jobs wait, so states are deterministic."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from tunesmith_server import Server, server_env

BODY = {
    "baseModel": "models/text-bison-001",
    "tuningTask": {"trainingData": {"examples": {"examples": [{"textInput": "1", "output": "2"}]}}},
}


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("idle-home")
    s = Server(home, server_env(home, str(tiny_model_dir)), "--no-worker")
    yield s
    s.stop()


@pytest.fixture()
def idle(idle_server):
    with httpx.Client(base_url=idle_server.url, timeout=60) as c:
        yield c


def test_health_says_no_worker(idle):
    assert idle.get("/healthz").json()["worker"] is False


def test_generating_with_a_model_still_creating_is_failed_precondition(idle):
    idle.post("/v1beta/tunedModels", params={"tunedModelId": "waiting"}, json=BODY)
    r = idle.post("/v1beta/tunedModels/waiting:generateText", json={"prompt": {"text": "1"}})
    assert r.status_code == 400
    assert r.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert "CREATING" in r.json()["error"]["message"]


def test_cancel_with_an_empty_body_ends_the_operation_cancelled(idle):
    op = idle.post("/v1beta/tunedModels", params={"tunedModelId": "to-cancel"}, json=BODY).json()
    r = idle.post(f"/v1beta/{op['name']}:cancel")  # no body at all, as google-api-core sends
    assert r.status_code == 200 and r.json() == {}
    done = idle.get(f"/v1beta/{op['name']}").json()
    assert done["done"] is True and done["error"]["code"] == 1
    assert idle.get("/v1beta/tunedModels/to-cancel").json()["state"] == "FAILED"


def test_a_separate_worker_process_runs_the_queued_jobs(idle, idle_server):
    op = idle.post("/v1beta/tunedModels", params={"tunedModelId": "by-worker"}, json=BODY).json()
    # `tunesmith worker` on the same TUNESMITH_HOME picks up what the server queued.
    worker = subprocess.Popen(
        [sys.executable, "-m", "tunesmith.cli", "worker"],
        env=idle_server.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not idle.get(f"/v1beta/{op['name']}").json()["done"]:
            time.sleep(0.3)
        assert idle.get("/v1beta/tunedModels/by-worker").json()["state"] == "ACTIVE"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
