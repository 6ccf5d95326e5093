"""SIGKILL of a worker process under load (issue 8, item 5).

A server with ``--no-worker`` and two ``tunesmith worker`` processes over one home; clients
send a burst of creates mixed with list, get and generate calls; one worker is killed with
SIGKILL while it runs a job. Every accepted create still ends ACTIVE or FAILED with a reason:
the survivor takes the killed worker's job over once its lease (2 s here) has expired.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tunesmith_server import Server, server_env, wait_done

pytestmark = pytest.mark.slow  # about a minute on two shared cores

CREATES = 4
READS = 18
# 10 examples x 2 epochs, batch 1: 20 steps, so a job is still running when it is picked.
EXAMPLES = [{"textInput": str(i), "output": str(i + 1)} for i in range(10)]
BODY = {
    "baseModel": "models/text-bison-001",
    "tuningTask": {
        "hyperparameters": {"epochCount": 2, "batchSize": 1},
        "trainingData": {"examples": {"examples": EXAMPLES}},
    },
}


@pytest.fixture()
def cluster(tmp_path, tiny_model_dir):
    """The server and two worker processes; whatever is still alive is stopped at the end."""
    env = server_env(
        tmp_path,
        str(tiny_model_dir),
        TUNESMITH_LEASE_SECONDS="2",
        TUNESMITH_CHECKPOINT_EVERY="5",
        TUNESMITH_MAX_JOBS_PER_USER="0",
        OMP_NUM_THREADS="1",  # tiny model; the processes share the machine's cores
    )
    server = Server(tmp_path, env, "--no-worker")
    workers = []
    for i in range(2):
        log = open(tmp_path / f"worker-{i}.log", "wb")  # noqa: SIM115
        cmd = [sys.executable, "-m", "tunesmith.cli", "worker"]
        workers.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    yield server, workers
    for w in workers:
        if w.poll() is None:
            w.terminate()
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
    server.stop()


def running_jobs(home) -> list[tuple[str, int, int]]:
    """(operation id, worker pid, steps done) of every job running now, from the database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{home / 'tunesmith.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT o.id, o.lease_owner, m.completed_steps FROM operations o "
                    "JOIN tuned_models m ON m.id = o.tuned_model_id WHERE o.status = 'running'"
                )
            ).all()
    finally:
        engine.dispose()
    # lease_owner is "host:pid:random" (jobs.worker.new_worker_id)
    return [(op, int(owner.split(":")[1]), steps) for op, owner, steps in rows if owner]


def call(url: str, kind: str, accepted: list[str]) -> int:
    with httpx.Client(base_url=url + "/v1beta", timeout=120) as c:
        if kind == "create":
            r = c.post("/tunedModels", json=BODY)
            if r.status_code == 200:
                accepted.append(r.json()["name"])
        elif kind == "list":
            r = c.get("/tunedModels", params={"pageSize": 20})
        elif kind == "get":
            target = accepted[-1].split("/operations/")[0] if accepted else "tunedModels/none"
            r = c.get(f"/{target}")
        else:
            r = c.post(
                "/models/text-bison-001:generateText",
                json={"prompt": {"text": str(random.randint(0, 99))}, "maxOutputTokens": 3},
            )
        return r.status_code


def test_sigkill_of_a_worker_under_load_loses_no_job(cluster, tmp_path):
    server, workers = cluster
    pids = {w.pid: w for w in workers}
    kinds = ["create"] * CREATES + ["list", "get", "generate"] * (READS // 3)
    random.Random(0).shuffle(kinds)
    accepted: list[str] = []
    killed = None

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(call, server.url, kind, accepted) for kind in kinds]
        # Kill the worker of the first job seen mid-run, while the load goes on.
        deadline = time.monotonic() + 120
        while killed is None:
            assert time.monotonic() < deadline, "no job was seen running"
            for op_id, pid, steps in running_jobs(tmp_path):
                if steps >= 1 and pid in pids:
                    os.kill(pid, signal.SIGKILL)
                    pids[pid].wait()
                    killed = op_id
                    break
            time.sleep(0.05)
        codes = [f.result() for f in futures]

    assert all(code < 500 for code in codes), codes  # never an internal error
    assert len(accepted) == CREATES, codes
    survivor = next(w for w in workers if w.poll() is None)

    with httpx.Client(base_url=server.url, timeout=60) as c:
        ends = {name: wait_done(c, name, timeout=300) for name in accepted}
        # More calls after the kill: the server is unaffected.
        assert c.get("/v1beta/tunedModels").status_code == 200
    for name, op in ends.items():
        if "error" in op:
            assert op["error"]["message"], (name, op)
        else:
            assert op["response"]["state"] == "ACTIVE", (name, op)
            assert op["metadata"]["completedSteps"] == op["metadata"]["totalSteps"] == 20
    taken_over = next(op for name, op in ends.items() if name.endswith(f"/operations/{killed}"))
    assert taken_over.get("response", {}).get("state") == "ACTIVE", taken_over
    assert survivor.poll() is None  # the survivor kept working through it all
