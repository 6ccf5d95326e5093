"""What the command line prints, read as a user reads it: no library warnings, tables that fit
80 columns without cutting an id, a version, headers, "1 step", errors naming the flag that was
typed, and an empty answer said as such. The real command in subprocesses, on the tiny model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

from tunesmith import __version__
from tunesmith.cli._common import NOT_FOUND, OK, USAGE
from tunesmith_server import tunesmith

ONE_ROW = "text_input,output\n1,2\n"
ONE_STEPS = re.compile(r"(?<![\d/])1 steps")  # "(1 steps", not the bar's "1/1 steps" count
LONG_ID = "a-number-generator-with-a-long-id-0123"  # 38 characters, as Google's ids can be


@pytest.fixture()
def env(tmp_path, tiny_model_dir) -> dict:
    """A user's shell: its own home, the tiny model as the default, an 80-column terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNESMITH_")}
    env.pop("PYTHONWARNINGS", None)  # Python's own defaults: what a user's terminal shows
    env.update(
        TUNESMITH_HOME=str(tmp_path / "home"),
        TUNESMITH_DEFAULT_BASE_MODEL=str(tiny_model_dir),
        TUNESMITH_WORKER_IDLE_SECONDS="5",
        COLUMNS="80",
    )
    (tmp_path / "one.csv").write_text(ONE_ROW)
    return env


def no_warnings(stderr: str) -> None:
    assert "Warning" not in stderr and "deprecated" not in stderr, stderr


def test_version(env):
    result = tunesmith("--version", env=env)
    assert result.returncode == OK
    assert result.stdout == f"tunesmith {__version__}\n"


def test_one_step_is_one_step_and_no_warnings(env, tmp_path):
    data = str(tmp_path / "one.csv")
    started = tunesmith("tune", data, "--id", "once", "--epochs", "1", "-d", env=env)
    assert started.returncode == OK, started.stderr
    assert "(1 step)" in started.stderr and not ONE_STEPS.search(started.stderr)
    watched = tunesmith("models", "watch", "once", env=env, timeout=300)
    assert watched.returncode == OK, watched.stderr
    assert "is ACTIVE (1 step, final loss" in watched.stderr
    assert not ONE_STEPS.search(watched.stderr)
    no_warnings(started.stderr + watched.stderr)
    answer = tunesmith("generate", "once", "1", "--max-output-tokens", "3", env=env)
    assert answer.returncode == OK, answer.stderr
    no_warnings(answer.stderr)


def test_the_sdk_prints_no_library_warnings(env, tiny_model_dir, tmp_path):
    """A script's default output: tuning (in the background worker) and generating in the
    script's own process (a model named by its folder is generated here) warn of nothing."""
    script = tmp_path / "script.py"
    script.write_text(
        "import tunesmith as ts\n"
        "op = ts.create_tuned_model('models/text-bison-001', [('1', '2')], id='quiet')\n"
        "op.result()\n"
        f"print(repr(ts.generate_text(model='models/{tiny_model_dir}', prompt='one two',\n"
        "                              temperature=0, max_output_tokens=4).result))\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    no_warnings(result.stderr)


def test_errors_name_the_flag_as_typed(env, tmp_path):
    data = str(tmp_path / "one.csv")
    short = tunesmith("tune", data, "-m", "models/no-such-model", env=env)
    assert short.returncode == NOT_FOUND, short.stderr
    assert "error: -m: base model 'models/no-such-model' not found" in short.stderr
    long = tunesmith("tune", data, "--base-model", "models/no-such-model", "--epochs", "0", env=env)
    assert long.returncode == USAGE, long.stderr  # a missing model and a bad flag: bad input
    assert "--epochs: 0 must be an integer" in long.stderr
    assert "--base-model: base model 'models/no-such-model' not found" in long.stderr
    assert "epoch_count" not in long.stderr and "source_model" not in long.stderr
    parent = tunesmith("tune", data, "--base-model", "tunedModels/missing", env=env)
    assert parent.returncode == NOT_FOUND and "--base-model: tunedModels/missing" in parent.stderr

    prompt = ("generate", "models/text-bison-001", "one two")
    candidates = tunesmith(*prompt, "-n", "0", env=env)
    assert candidates.returncode == USAGE
    assert "error: -n: 0 must be" in candidates.stderr, candidates.stderr
    both = tunesmith(*prompt, "--candidates=0", "--top-p", "3", env=env)
    assert "--candidates: 0 must be" in both.stderr and "--top-p: 3.0 must be" in both.stderr
    assert "candidate_count" not in both.stderr + candidates.stderr


def test_an_empty_answer_is_said_on_stderr(env, tiny_model_dir, tmp_path):
    """A model whose first token is always its end: the answer is empty, and says so."""
    silent = silent_model(tiny_model_dir, tmp_path / "silent")
    result = tunesmith("generate", f"models/{silent}", "hi", "--temperature", "0", env=env)
    assert result.returncode == OK, result.stderr
    assert result.stdout == ""
    assert "(empty answer)" in result.stderr
    two = tunesmith("generate", f"models/{silent}", "hi", "--temperature", "0", "-n", "2", env=env)
    assert two.stdout == "" and two.stderr.count("(empty answer)") == 2


def test_keys_list_has_headers(env):
    assert tunesmith("keys", "create", "alice", env=env).returncode == OK
    assert tunesmith("keys", "create", "bob", "--user", "robert", env=env).returncode == OK
    assert tunesmith("keys", "revoke", "bob", env=env).returncode == OK
    listed = tunesmith("keys", "list", env=env)
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "USER", "ID", "STARTS", "WITH", "CREATED", "STATE"]
    assert rows[0].split()[:2] == ["alice", "alice"] and rows[0].split()[-1] == "active"
    assert rows[1].split()[:2] == ["bob", "robert"] and "revoked" in rows[1]


def test_models_list_fits_80_columns_and_never_cuts_an_id(env, tmp_path):
    data = str(tmp_path / "one.csv")
    for args in (("--id", LONG_ID, "--display-name", "number generator for a demo"),
                 ("--id", "short")):  # fmt: skip
        assert tunesmith("tune", data, *args, "--detach", env=env).returncode == OK

    narrow = tunesmith("models", "list", env=env)
    assert narrow.returncode == OK, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert all(cell_len(line.rstrip()) <= 80 for line in lines), narrow.stdout
    assert lines[0].split()[:4] == ["ID", "NAME", "STATE", "PROGRESS"]
    assert any(line.startswith(LONG_ID + " ") for line in lines), narrow.stdout
    assert any(line.startswith("short ") for line in lines), narrow.stdout
    assert "left out to fit 80 columns" in narrow.stderr  # the model's folder is too long

    wide = tunesmith("models", "list", env={**env, "COLUMNS": "250"})
    header = wide.stdout.splitlines()[0].split()
    assert header == ["ID", "NAME", "STATE", "PROGRESS", "BASE", "MODEL", "CREATED"]
    assert "left out" not in wide.stderr
    assert env["TUNESMITH_DEFAULT_BASE_MODEL"] in wide.stdout  # whole, on one line


def silent_model(tiny_model_dir: Path, folder: Path) -> Path:
    """The tiny model with its final norm zeroed (every logit 0, so greedy picks token 0,
    the pad token) and the pad token also ending a generation."""
    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(tiny_model_dir, folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    model.generation_config.eos_token_id = [model.config.eos_token_id, model.config.pad_token_id]
    model.save_pretrained(folder)
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"][1] == 0
    return folder
