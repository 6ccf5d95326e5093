"""A real ``tunesmith serve`` in a subprocess, on 127.0.0.1 and a free port, with its own home.

Used by the API and compatibility tests: they talk to it exactly as users do.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What the test servers' operator calls the model folder it is given (the tiny model).
OFFERED_NAME = "tiny"


def server_env(home: Path, default_base_model: str | None = None, **extra: str) -> dict:
    """The environment of a server (and of the CLI beside it) with its own home.

    A model folder as ``default_base_model`` is offered the way an operator offers one,
    ``TUNESMITH_BASE_MODELS=tiny=FOLDER``, and made the default: callers name it
    ``models/tiny``, by its folder as configured, or by an alias such as text-bison-001.
    """
    env = dict(os.environ)
    for var in ("TUNESMITH_DATABASE_URL", "TUNESMITH_API_ENDPOINT", "TUNESMITH_API_KEY"):
        env.pop(var, None)
    env.pop("TUNESMITH_BASE_MODELS", None)
    env["TUNESMITH_HOME"] = str(home)
    if default_base_model and Path(default_base_model).exists():
        env["TUNESMITH_BASE_MODELS"] = f"{OFFERED_NAME}={default_base_model}"
        default_base_model = f"models/{OFFERED_NAME}"
    if default_base_model:
        env["TUNESMITH_DEFAULT_BASE_MODEL"] = default_base_model
    env.update(extra)
    return env


def tunesmith(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``tunesmith`` CLI."""
    return subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Server:
    def __init__(self, home: Path, env: dict, *args: str):
        self.home = home
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "server.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tunesmith.cli", "serve", "--host", "127.0.0.1"]
            + ["--port", str(self.port), "--log-level", "warning", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def wait_done(client: httpx.Client, op_name: str, timeout: float = 300) -> dict:
    """Poll an operation until it is done; its JSON."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op = client.get(f"/v1beta/{op_name}").json()
        if op.get("done"):
            return op
        time.sleep(0.2)
    raise AssertionError(f"{op_name} not done after {timeout} s")
