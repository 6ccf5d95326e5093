"""SIGKILL the server while creates arrive: every create it answered survives and finishes."""

from __future__ import annotations

import signal
import socket
import threading

import httpx

from .conftest import wait_until

EXAMPLES = [{"textInput": str(i), "output": str(i + 1)} for i in range(1, 7)]
BODY = {
    "baseModel": "models/text-bison-001",  # an alias: the tiny model is the default here
    "tuningTask": {
        "trainingData": {"examples": {"examples": EXAMPLES}},
        "hyperparameters": {"epochCount": 2, "batchSize": 1},  # 12 steps
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(procs, port: int):
    proc = procs.start("-m", "tunesmith.cli", "serve", "--host", "127.0.0.1", "--port", str(port))

    def ready():
        assert proc.poll() is None, procs.output(proc)
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, what="the server")
    return proc


class Creator(threading.Thread):
    """Sends creates one after another; keeps the names the server answered with success."""

    def __init__(self, url: str, limit: int = 10):
        super().__init__(daemon=True)
        self.url, self.limit = url, limit
        self.answered: list[str] = []
        self.server_errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(self.limit):
                if self.stop.wait(0.2):
                    return
                try:
                    r = client.post(f"{self.url}/v1beta/tunedModels", json=BODY)
                except httpx.HTTPError:
                    continue  # the server is gone: this create was never answered
                if r.status_code == 200:
                    self.answered.append(r.json()["name"])
                else:
                    self.server_errors.append(f"{r.status_code} {r.text}")


def test_a_killed_server_loses_no_answered_create_and_resumes_its_jobs(job_service, procs):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(procs, port)
    creator = Creator(url)
    creator.start()
    wait_until(lambda: len(creator.answered) >= 3, what="some creates")
    first = creator.answered[0]
    wait_until(lambda: job_service.tuning.get_operation(first).metadata.completed_steps >= 4)
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    creator.stop.set()
    creator.join(timeout=60)
    answered = list(creator.answered)
    assert not creator.server_errors

    _serve(procs, port)  # the same home and database
    with httpx.Client(timeout=30) as client:
        for name in answered:
            op = wait_until(
                lambda n=name: (o := client.get(f"{url}/v1beta/{n}").json()).get("done") and o,
                timeout=300,
                what=f"{name} to finish after the restart",
            )
            assert "error" not in op, op["error"]
            steps = [s["step"] for s in op["metadata"]["snapshots"]]
            assert steps == list(range(1, 13))
