"""``tunesmith generate`` in embedded mode: answered by the home's generation server, which
keeps the model loaded between calls; its errors are the service's, with the same exit codes.
The real command, in subprocesses, on the tiny model."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

import tunesmith as ts
from tunesmith.cli._common import NOT_FOUND, OK, USAGE
from tunesmith.jobs.embedded import socket_beside
from tunesmith_server import server_env, tunesmith

GENERATE = ("generate", "models/text-bison-001", "one two", "--temperature", "0",
            "--max-output-tokens", "4")  # fmt: skip


def alive(pid: int) -> bool:
    """Running (a process that exited but is not reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(check, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def server_pid(home: Path) -> int:
    """The pid in the home's one generation-server lock file."""
    (lock,) = (home / "run").glob("generation-*.lock")
    return int(lock.read_text())


def sockets(home: Path) -> list[Path]:
    places = [socket_beside(lock) for lock in (home / "run").glob("generation-*.lock")]
    return [sock for sock in places if sock.exists()]


def log(home: Path) -> str:
    return (home / "logs" / "generation.log").read_text()


def answered(home: Path, verb: str, status: int) -> list[int]:
    """The pids of the server processes that answered ``verb`` with ``status``."""
    line = rf"^\S+ \S+ (\d+) uvicorn\.access .*:{verb} HTTP/1\.1\" {status}$"
    return [int(pid) for pid in re.findall(line, log(home), re.M)]


@pytest.fixture()
def env(cli_home, tiny_model_dir):
    """The CLI's environment; servers it starts are stopped at the end."""
    yield server_env(cli_home, str(tiny_model_dir), TUNESMITH_WORKER_IDLE_SECONDS="120")
    for lock in (cli_home / "run").glob("generation-*.lock"):
        pid = int(lock.read_text() or 0)
        if pid and alive(pid):
            os.kill(pid, signal.SIGTERM)


def test_the_second_generate_is_answered_by_the_running_server(cli_home, env):
    first = tunesmith(*GENERATE, env=env)
    assert first.returncode == OK, first.stderr
    pid = server_pid(cli_home)
    assert alive(pid) and len(sockets(cli_home)) == 1

    second = tunesmith(*GENERATE, env=env)
    assert second.returncode == OK, second.stderr
    assert second.stdout == first.stdout  # greedy: the same answer
    assert server_pid(cli_home) == pid and alive(pid)
    assert log(cli_home).count("listening on") == 1  # one server started, once
    assert answered(cli_home, "generateContent", 200) == [pid, pid]

    # Told to stop, it leaves cleanly: socket removed, no traceback, no abort.
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid), what="the server to stop")
    assert sockets(cli_home) == []
    text = log(cli_home)
    assert f"generation server {pid} stopped" in text
    assert "Traceback" not in text and "terminate called" not in text


def test_errors_through_the_server_are_the_services_with_their_exit_codes(cli_home, env):
    here = ts.EmbeddedClient(generation_server=False)  # the same calls, in this process

    missing = tunesmith("generate", "models/nope", "hi", env=env)
    assert missing.returncode == NOT_FOUND, missing.stderr
    with pytest.raises(ts.NotFound) as local:
        ts.generate_text(model="models/nope", prompt="hi", client=here)
    assert local.value.message in missing.stderr

    untuned = tunesmith("generate", "nope", "hi", env=env)
    assert untuned.returncode == NOT_FOUND and "tunedModels/nope not found" in untuned.stderr

    hot = tunesmith(*GENERATE, "--temperature", "5", env=env)
    assert hot.returncode == USAGE, hot.stderr
    with pytest.raises(ts.InvalidArgument) as local:
        ts.generate_text(model="models/text-bison-001", prompt="hi", temperature=5.0, client=here)
    assert local.value.message in hot.stderr and "temperature" in hot.stderr
    assert "Traceback" not in missing.stderr + untuned.stderr + hot.stderr

    # They were the server's answers, not this process's.
    pid = server_pid(cli_home)
    assert answered(cli_home, "generateContent", 404) == [pid, pid]
    assert answered(cli_home, "generateContent", 400) == [pid]


def test_a_killed_server_is_replaced_and_an_idle_one_leaves(cli_home, env):
    env["TUNESMITH_WORKER_IDLE_SECONDS"] = "10"  # long enough to kill it first on a busy machine
    assert tunesmith(*GENERATE, env=env).returncode == OK
    killed = server_pid(cli_home)
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: not alive(killed), what="the server to die")
    assert len(sockets(cli_home)) == 1  # its socket is left behind

    again = tunesmith(*GENERATE, env=env)
    assert again.returncode == OK, again.stderr
    replacement = server_pid(cli_home)
    assert replacement != killed and answered(cli_home, "generateContent", 200)[-1] == replacement

    # Without requests it leaves by itself and takes its socket with it.
    wait_until(lambda: not alive(replacement), what="the idle server to leave")
    assert sockets(cli_home) == []
    assert "leaving after 10 s without a request" in log(cli_home)
