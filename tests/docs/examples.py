"""Run the code blocks of a Markdown page in order, as a reader would, and report the first
that fails.

A page is read top to bottom. Its ```python blocks run in one Python process (one namespace,
so a later block uses what an earlier one made); its ```bash blocks run in one bash session
(variables, ``cd`` and background jobs carry over). Blocks fenced as anything else (``text``,
``console``, ``yaml``, ...) are shown, not run. Each page starts in an empty folder with an
empty ``TUNESMITH_HOME`` and ends with every process it started stopped.

What the runner changes, and only this (``SUBSTITUTIONS``): the packaged base model (by either
dialect's name) becomes the tiny test model (the real one is the slow tests' business),
``0.0.0.0`` becomes ``127.0.0.1`` (tests listen on loopback only) and port 8080 becomes a free
port. What it provides: the data
files the pages name (``data.csv`` etc., see ``DATA_FILES``) and ``$KEY``, an API key of user
``alice``, in the environment of both sessions (``KEY`` in Python too).

A block that cannot run here is preceded by ``<!-- not run: REASON -->``; the test lists them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<why>.+?)\s*-->\s*$")
RUN = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}


@dataclasses.dataclass
class Block:
    page: str
    line: int
    lang: str  # "python" | "bash"
    code: str
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for m in _FENCE.finditer(text):
        lang = RUN.get(m["lang"].lower())
        if lang is None:
            continue
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        why = _NOT_RUN.search(before)
        found.append(
            Block(path.name, line, lang, textwrap.dedent(m["body"]), why["why"] if why else None)
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def substitutions(tiny_model: Path, port: int) -> list[tuple[str, str]]:
    return [
        ("models/smollm2-135m-instruct", str(tiny_model)),
        ("smollm2-135m-instruct", str(tiny_model)),  # OpenAI's name for it
        ("0.0.0.0", "127.0.0.1"),
        ("8080", str(port)),
    ]


DATA_ROWS = [("1", "2"), ("3", "4"), ("8", "9"), ("twelve", "thirteen"), ("-3", "-2"), ("19", "20")]
DATA_FILES = {
    "data.csv": "text_input,output\n" + "".join(f'"{i}","{o}"\n' for i, o in DATA_ROWS),
    "train.csv": "text_input,output\n" + "".join(f'"{i}","{o}"\n' for i, o in DATA_ROWS),
    "held_out.csv": 'text_input,output\n"5","6"\n"ten","eleven"\n',
    "data.jsonl": "".join(
        json.dumps({"input_text": i, "output_text": o}) + "\n" for i, o in DATA_ROWS
    ),
}

_PY_DRIVER = r"""
import json, sys, traceback, os
ns = {"__name__": "__main__", "KEY": os.environ.get("KEY")}
for line in sys.stdin:
    code = json.loads(line)
    try:
        exec(compile(code, "<example>", "exec"), ns)
        ok = True
    except BaseException:
        traceback.print_exc()
        ok = False
    sys.stdout.flush(); sys.stderr.flush()
    print("\n__EXAMPLE_DONE__ " + ("ok" if ok else "failed"), flush=True)
"""


class Session:
    """One page's two sessions (python, bash) in one process group, and its clean-up."""

    def __init__(self, workdir: Path, env: dict[str, str], log: Path):
        self.workdir, self.env, self.log = workdir, env, log
        self._log = open(log, "w")
        self._procs: dict[str, subprocess.Popen] = {}
        self._lines: dict[str, queue.Queue] = {}

    def _start(self, lang: str) -> subprocess.Popen:
        if lang not in self._procs:
            args = [sys.executable, "-u", "-c", _PY_DRIVER] if lang == "python" else ["bash"]
            self._procs[lang] = subprocess.Popen(
                args,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                text=True,
                start_new_session=True,  # its background jobs share its group: one kill ends all
            )
            # Drained all the time: a background server writing to the pipe must never block.
            lines = self._lines[lang] = queue.Queue()
            threading.Thread(
                target=_drain, args=(self._procs[lang].stdout, lines), daemon=True
            ).start()
        return self._procs[lang]

    def run(self, block: Block, code: str, timeout: float) -> tuple[bool, str]:
        proc = self._start(block.lang)
        self._log.write(f"\n===== {block.where} ({block.lang})\n{code}\n-----\n")
        self._log.flush()
        if block.lang == "python":
            proc.stdin.write(json.dumps(code) + "\n")
        else:
            script = self.workdir / f".block-{block.line}.sh"
            script.write_text("set -eo pipefail\n" + code + "\nset +eo pipefail\n")
            # A failing command ends the session (set -e), which the reader below sees as EOF.
            proc.stdin.write(f"source {script}\necho; echo __EXAMPLE_DONE__ ok\n")
        proc.stdin.flush()
        out, deadline = [], time.monotonic() + timeout
        while True:
            try:
                line = self._lines[block.lang].get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False, "".join(out) + f"\n(timed out after {timeout:.0f} s)"
            if line is None:
                return False, "".join(out) + "\n(the session ended: a command failed)"
            if line.startswith("__EXAMPLE_DONE__"):
                return line.split()[1] == "ok", "".join(out)
            out.append(line)
            self._log.write(line)

    def close(self) -> None:
        for proc in self._procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self._procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self._log.close()


def _drain(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


_SERVE_IN_BACKGROUND = re.compile(r"^tunesmith serve\b.*&\s*(#.*)?$", re.M)


def split_after_servers(code: str) -> list[str]:
    """A block that starts a server in the background and then calls it runs in two parts,
    the second once the server answers, as it would for a person typing the lines."""
    parts, start = [], 0
    for m in _SERVE_IN_BACKGROUND.finditer(code):
        parts.append(code[start : m.end()] + "\n")
        start = m.end() + 1
    rest = code[start:]
    return parts + [rest] if rest.strip() else parts


def wait_for_server(code: str, port: int, timeout: float = 60) -> None:
    """After a block that starts ``tunesmith serve`` in the background, wait until it answers."""
    if "tunesmith serve" not in code:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"the server on port {port} did not answer /healthz in {timeout} s")
