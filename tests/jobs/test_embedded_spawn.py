"""A cold start launches exactly one embedded process per home, however many callers ask at
once (several scripts, or a script and the CLI, creating jobs or generating together)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import running, wait_until

CALLERS = 6

# Each caller gets ready (imports done), waits for the same go signal, then asks.
CALLER = """
import sys, time
from pathlib import Path
from tunesmith.jobs import embedded
from tunesmith.settings import get_settings

ensure, go, ready = sys.argv[1:]
settings = get_settings()
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.001)
print(getattr(embedded, ensure)(settings))
"""

# What each kind of process writes when it starts, whether or not it then finds the home's
# lock taken (a process that loses the race writes its line and leaves).
CASES = {
    "worker": ("ensure_worker", "tunesmith.jobs.worker", "worker.log", r"worker \S+ started"),
    "generation server": (
        "ensure_generation_server",
        "tunesmith.api.local",
        "generation.log",
        r"listening on|another generation server serves",
    ),
}


@pytest.mark.parametrize("which", list(CASES))
def test_concurrent_cold_starts_launch_exactly_one_process(
    which, home, tiny_model_dir, tmp_path, monkeypatch
):
    ensure, module, log_name, start_line = CASES[which]
    monkeypatch.setenv("TUNESMITH_WORKER_IDLE_SECONDS", "1")
    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_model_dir))
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(CALLERS)]
    callers = [
        subprocess.Popen(
            [sys.executable, "-c", CALLER, ensure, str(go), str(r)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    try:
        wait_until(lambda: all(r.exists() for r in ready), what="callers ready")
        go.touch()
        answers = [c.communicate(timeout=120)[0].strip() for c in callers]
    finally:
        for c in callers:
            if c.poll() is None:
                c.kill()
    assert sorted(answers) == ["False"] * (CALLERS - 1) + ["True"], answers

    # Every process a caller launched had started by the time its caller returned; once all
    # have left (idle for 1 s), each has written its line.
    wait_until(lambda: not running(home, module), timeout=180, what=f"the {which} to leave")
    log = (home / "logs" / log_name).read_text()
    assert len(re.findall(start_line, log)) == 1, log
