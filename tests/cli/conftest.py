from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture()
def cli_home(home, tiny_model_dir, monkeypatch) -> Path:
    """An empty home whose default base model (what the CLI tunes by default) is tiny."""
    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_model_dir))
    return home


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture()
def data_files(tmp_path) -> dict[str, Path]:
    """Good and bad training files in each format."""
    files = {
        "good.csv": "text_input,output\n1,2\n3,4\n5,6\n7,8\n",
        "bad.csv": "text_input,output\n1,2\n3,4\n5,\n",
        "cols.csv": "question,answer\n1,2\n3,4\n",
        "good.jsonl": '{"text_input": "1", "output": "2"}\n{"text_input": "3", "output": "4"}\n',
        "bad.jsonl": '{"text_input": "1", "output": "2"}\n{"text_input": "3", "output": \n',
    }
    out = {}
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        out[name] = path
    return out
