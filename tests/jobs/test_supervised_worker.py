"""The server's worker is a supervised child process: a run that hangs for real is failed
with a reason naming the stall, its process is replaced, and the server answers all along.

The hang comes from ``hang_hook/sitecustomize.py`` on the server's PYTHONPATH: a run whose
training data contains the hang word blocks forever after its first step, inside the worker
process, with its heartbeat still renewing the lease (a hang no lease expiry would notice).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tunesmith_server import Server, server_env, wait_done

from .conftest import hang_hook_path

STALL_SECONDS = 40  # well past loading the tiny model on a loaded machine


def body(word: str, n: int = 4) -> dict:
    rows = [{"textInput": f"{word} {i}", "output": str(i + 1)} for i in range(n)]
    return {
        "baseModel": "models/text-bison-001",
        "tuningTask": {
            "hyperparameters": {"epochCount": 1, "batchSize": 1},
            "trainingData": {"examples": {"examples": rows}},
        },
    }


def worker_pids(server_pid: int) -> set[int]:
    """The server's child processes running ``tunesmith.jobs.worker``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == server_pid and b"tunesmith.jobs.worker" in cmdline:
            found.add(int(entry.name))
    return found


def test_a_hung_run_is_failed_its_worker_replaced_and_the_server_keeps_serving(
    tmp_path, tiny_model_dir
):
    env = server_env(
        tmp_path,
        str(tiny_model_dir),
        PYTHONPATH=hang_hook_path(),
        TUNESMITH_TEST_HANG_WORD="hangs",
        TUNESMITH_PROGRESS_TIMEOUT_SECONDS=str(STALL_SECONDS),
        TUNESMITH_LEASE_SECONDS="2",  # the heartbeat keeps a hung run's lease all the same
    )
    server = Server(tmp_path, env)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            deadline = time.monotonic() + 60
            while not (first := worker_pids(server.proc.pid)) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert len(first) == 1, "the server runs one worker process"
            assert c.get("/healthz").json()["worker"] is True

            hung = c.post(
                "/v1beta/tunedModels", params={"tunedModelId": "hung"}, json=body("hangs")
            )
            assert hung.status_code == 200, hung.text
            # While the run hangs, the server answers.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                model = c.get("/v1beta/tunedModels/hung").json()
                if model.get("tuningTask", {}).get("snapshots"):
                    break
                time.sleep(0.2)
            assert model["state"] == "CREATING" and model["tuningTask"]["snapshots"], model
            assert c.get("/healthz").status_code == 200

            op = wait_done(c, hung.json()["name"], timeout=120)
            assert op["error"]["code"] == 4  # DEADLINE_EXCEEDED
            assert "stalled" in op["error"]["message"]
            assert f"{STALL_SECONDS} seconds" in op["error"]["message"]
            assert c.get("/v1beta/tunedModels/hung").json()["state"] == "FAILED"

            # The hung process was killed and another one started.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                now = worker_pids(server.proc.pid)
                if now and not now & first:
                    break
                time.sleep(0.2)
            assert now and not now & first, (first, now)
            assert all(not Path(f"/proc/{pid}").exists() for pid in first)

            # The next job runs on the new worker and succeeds.
            fine = c.post("/v1beta/tunedModels", params={"tunedModelId": "fine"}, json=body("ok"))
            assert fine.status_code == 200, fine.text
            op = wait_done(c, fine.json()["name"], timeout=240)
            assert "error" not in op, op
            assert c.get("/v1beta/tunedModels/fine").json()["state"] == "ACTIVE"
            assert server.proc.poll() is None
    finally:
        server.stop()


def test_a_worker_process_that_dies_is_started_again(tmp_path, tiny_model_dir):
    server = Server(tmp_path, server_env(tmp_path, str(tiny_model_dir)))
    try:
        deadline = time.monotonic() + 60
        while not (first := worker_pids(server.proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(first) == 1
        (killed,) = first
        os.kill(killed, signal.SIGKILL)  # as the kernel's OOM killer would
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = worker_pids(server.proc.pid)
            if now and killed not in now:
                break
            time.sleep(0.2)
        assert len(now) == 1 and killed not in now, (killed, now)
        assert httpx.get(f"{server.url}/healthz").json()["worker"] is True
        assert server.proc.poll() is None
    finally:
        server.stop()
