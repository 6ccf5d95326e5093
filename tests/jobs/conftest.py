"""Helpers for the jobs tests: worker processes started and signalled for real."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

HANG_HOOK = Path(__file__).parent / "hang_hook"


def hang_hook_path() -> str:
    """A PYTHONPATH that puts ``hang_hook`` (a run that hangs on a word) before the user's."""
    return os.pathsep.join(filter(None, [str(HANG_HOOK), os.environ.get("PYTHONPATH")]))


def wait_until(check: Callable[[], object], timeout: float = 120, what: str = "condition"):
    """Poll ``check`` until it returns something truthy; generous timeouts, no timing asserts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Processes:
    """Starts tunesmith processes with the test's environment; kills leftovers at the end."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.started: list[subprocess.Popen] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"proc-{len(self.started)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        proc.log_path = log.name
        self.started.append(proc)
        return proc

    def worker(self, **env: str) -> subprocess.Popen:
        return self.start("-m", "tunesmith.jobs.worker", env=env)

    def output(self, proc: subprocess.Popen) -> str:
        return Path(proc.log_path).read_text(errors="replace")

    def cleanup(self) -> None:
        for p in self.started:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)


@pytest.fixture()
def procs(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_LEASE_SECONDS", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny model; workers share two cores
    monkeypatch.setenv("TUNESMITH_CHECKPOINT_EVERY", "3")
    p = Processes(tmp_path / "logs")
    yield p
    p.cleanup()


def running(home: Path, module: str) -> set[int]:
    """Processes of ``module`` serving ``home``: named in their command line, which may be
    ``-m MODULE`` or code that imports it (Linux: read from /proc)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone, or not ours
        if module.encode() in b" ".join(argv) and f"TUNESMITH_HOME={home}".encode() in env:
            pids.add(int(proc.name))
    return pids
