"""The README and every page under docs/ work as written: their examples run, the site builds.

See ``examples.py`` for how a page runs and the little it changes (the tiny model for the
packaged one, a free port for 8080).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .examples import (
    DATA_FILES,
    Session,
    blocks,
    free_port,
    split_after_servers,
    substitutions,
    wait_for_server,
)

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
BLOCK_TIMEOUT = 240.0


def _runnable(page: Path) -> bool:
    return any(b.not_run is None for b in blocks(page))


@pytest.mark.slow
@pytest.mark.parametrize(
    "page", [p for p in PAGES if _runnable(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_examples_run_as_written(page: Path, tmp_path, tiny_model_dir):
    workdir = tmp_path / "work"
    workdir.mkdir()
    for name, content in DATA_FILES.items():
        (workdir / name).write_text(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNESMITH_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        TUNESMITH_HOME=str(tmp_path / "home"),
        TUNESMITH_DEFAULT_BASE_MODEL=str(tiny_model_dir),
        TUNESMITH_WORKER_IDLE_SECONDS="5",
        PYTHONWARNINGS="ignore",
    )
    key = subprocess.run(
        [BIN / "tunesmith", "keys", "create", "docs", "--user", "alice"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env["KEY"] = key
    port = free_port()
    subs = substitutions(tiny_model_dir, port)
    session = Session(workdir, env, tmp_path / "examples.log")
    try:
        for block in blocks(page):
            if block.not_run:
                continue
            code = block.code
            for old, new in subs:
                code = code.replace(old, new)
            for part in split_after_servers(code):
                ok, output = session.run(block, part, BLOCK_TIMEOUT)
                log = (tmp_path / "examples.log").read_text()[-6000:]
                assert ok, (
                    f"the example at {block.where} failed:\n{block.code}\n"
                    f"--- output\n{output}\n--- log\n{log}"
                )
                wait_for_server(part, port)
    finally:
        session.close()


def test_blocks_not_run_say_why():
    """Every example runs except the few that need what a test machine lacks, each saying so."""
    skipped = [(b.where, b.not_run) for p in PAGES for b in blocks(p) if b.not_run]
    for where, why in skipped:
        assert len(why) > 10, f"{where}: say why the example cannot run here"
    assert len(skipped) <= 6, skipped


def test_docs_site_builds_strict(tmp_path):
    """``mkdocs build --strict`` fails on a broken link, a missing page or a bad nav entry."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    for name in ("README.md", "SECURITY.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    result = subprocess.run(
        [BIN / "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").exists()
