"""A server started with --no-worker: jobs wait, so states are deterministic."""

from __future__ import annotations

import concurrent.futures
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


def test_wait_answers_a_queued_operation_as_it_is_after_the_timeout(idle):
    op = idle.post("/v1beta/tunedModels", params={"tunedModelId": "wait-queued"}, json=BODY).json()
    r = idle.post(f"/v1beta/{op['name']}:wait", json={"timeout": "0.2s"})
    assert r.status_code == 200
    assert r.json()["name"] == op["name"] and not r.json().get("done")
    assert r.json()["metadata"]["phase"]["name"] == "QUEUED"


def test_wait_answers_when_the_operation_ends_not_at_the_timeout(idle, idle_server):
    op = idle.post("/v1beta/tunedModels", params={"tunedModelId": "wait-ends"}, json=BODY).json()
    # The wait asks for a minute; the client gives up after 20 s. It is answered only if the
    # server answers when the operation ends (cancelled from another connection meanwhile).
    with httpx.Client(base_url=idle_server.url, timeout=20) as waiter:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(
                waiter.post, f"/v1beta/{op['name']}:wait", json={"timeout": "60s"}
            )
            time.sleep(0.5)
            assert not waiting.done()
            idle.post(f"/v1beta/{op['name']}:cancel")
            answer = waiting.result()
    assert answer.status_code == 200
    assert answer.json()["done"] is True and answer.json()["error"]["code"] == 1


@pytest.mark.parametrize(
    "body, field",
    [({"timeout": "soon"}, "timeout"), ({"timeout": "-1s"}, "timeout"), ([1], "body")],
)
def test_wait_with_a_bad_timeout_is_invalid_argument_naming_it(idle, body, field):
    ops = idle.get("/v1beta/operations").json()["operations"]
    r = idle.post(f"/v1beta/{ops[0]['name']}:wait", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert r.json()["error"]["message"].startswith(f"{field}:")


def test_waiting_for_an_operation_that_does_not_exist_is_not_found(idle):
    r = idle.post("/v1beta/tunedModels/nobody/operations/nothing:wait", json={})
    assert r.status_code == 404
