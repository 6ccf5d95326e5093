"""A real ``tunesmith serve`` for the benchmarks, once its tuning worker has readied itself."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path


@contextlib.contextmanager
def readied_server(home: Path, env: dict, timeout: float = 600):
    """``tunesmith serve`` on ``home`` and a free loopback port, once its worker has said it
    is ready (the default base and its compiled layers loaded, see docs/workers.md); yields
    its URL and the server's process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = home / "serve.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tunesmith.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port)], env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while b" ready in " not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server's worker did not get ready:\n{log.read_text()}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)
