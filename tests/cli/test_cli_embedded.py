"""The CLI in-process (typer's CliRunner), embedded: no server, the tiny model as default."""

from __future__ import annotations

import json

import pytest

from tunesmith.cli import app
from tunesmith.cli._common import FAILED, NOT_FOUND, OK, UNREACHABLE, USAGE


def run(runner, *args, input=None):
    return runner.invoke(app, list(args), input=input)


def no_traceback(result) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


@pytest.mark.parametrize(
    "name, message",
    [
        ("bad.csv", "training_data row 3: 'output' is empty"),
        ("bad.jsonl", "training_data line 2: not valid JSON"),
        ("cols.csv", "training_data row 1: missing key 'text_input'"),
    ],
)
def test_bad_training_data_names_the_row(runner, cli_home, data_files, name, message):
    result = run(runner, "tune", str(data_files[name]), "--detach")
    assert result.exit_code == USAGE, result.output
    assert message in result.stderr
    no_traceback(result)


def test_missing_file_and_bad_flags_are_usage_errors(runner, cli_home, data_files):
    missing = run(runner, "tune", "nope.csv")
    assert missing.exit_code == USAGE and "file not found: nope.csv" in missing.stderr
    no_traceback(missing)
    bad_flag = run(runner, "tune", str(data_files["good.csv"]), "--epochs", "many")
    assert bad_flag.exit_code == USAGE and "'--epochs'" in bad_flag.stderr
    bad_value = run(runner, "tune", str(data_files["good.csv"]), "--epochs", "0", "-d")
    assert bad_value.exit_code == USAGE and "epoch" in bad_value.stderr
    no_traceback(bad_value)


def test_not_found_and_unreachable(runner, cli_home):
    from tunesmith_server import free_port

    missing = run(runner, "models", "show", "nope")
    assert missing.exit_code == NOT_FOUND and "tunedModels/nope not found" in missing.stderr
    no_traceback(missing)
    assert run(runner, "models", "delete", "nope", "--yes").exit_code == NOT_FOUND
    endpoint = f"http://127.0.0.1:{free_port()}"
    down = run(runner, "models", "list", "--endpoint", endpoint)
    assert down.exit_code == UNREACHABLE, down.output
    assert f"cannot reach tunesmith at {endpoint}" in down.stderr
    no_traceback(down)


def test_tune_follow_list_show_generate_delete(runner, cli_home, data_files):
    tuned = run(
        runner, "tune", str(data_files["good.csv"]), "--id", "adder", "--display-name",
        "adder", "--epochs", "2", "--batch-size", "2", "--learning-rate", "0.01", "--json",
    )  # fmt: skip
    assert tuned.exit_code == OK, tuned.output
    op = json.loads(tuned.stdout)
    assert op["done"] is True and op["response"]["state"] == "ACTIVE"
    assert op["metadata"]["totalSteps"] == 4 and len(op["metadata"]["snapshots"]) == 4

    listed = json.loads(run(runner, "models", "list", "--json").stdout)
    assert [m["name"] for m in listed["tunedModels"]] == ["tunedModels/adder"]
    table = run(runner, "models", "list")
    assert "adder" in table.stdout and "ACTIVE" in table.stdout and "4/4" in table.stdout

    shown = run(runner, "models", "show", "adder", "--json")
    detail = json.loads(shown.stdout)
    assert detail["tunedModel"]["tuningTask"]["hyperparameters"]["epochCount"] == 2
    assert detail["operation"]["done"] is True
    human = run(runner, "models", "show", "tunedModels/adder").stdout
    assert "learning rate" in human and "0.01" in human and "→" in human

    gen = run(runner, "generate", "adder", "1", "--temperature", "1", "--max-output-tokens",
              "4", "--candidates", "2", "--json")  # fmt: skip
    assert gen.exit_code == OK, gen.output
    assert len(json.loads(gen.stdout)["candidates"]) == 2
    plain = run(runner, "generate", "adder", "1", "--temperature", "0", "--max-output-tokens", "4")
    assert plain.exit_code == OK and plain.stdout.endswith("\n")  # the tiny model may say little

    already = run(runner, "models", "cancel", "adder", "--yes")
    assert already.exit_code == USAGE and "not tuning" in already.stderr
    declined = run(runner, "models", "delete", "adder", input="n\n")
    assert declined.exit_code == FAILED and "nothing done" in declined.stderr
    assert run(runner, "models", "delete", "adder", input="y\n").exit_code == OK
    assert run(runner, "models", "show", "adder").exit_code == NOT_FOUND


def test_detach_then_cancel(runner, cli_home, data_files):
    started = run(runner, "tune", str(data_files["good.jsonl"]), "--id", "stopper",
                  "--epochs", "50", "--batch-size", "1", "--detach", "--json")  # fmt: skip
    assert started.exit_code == OK, started.output
    assert json.loads(started.stdout)["done"] is False
    assert run(runner, "models", "cancel", "stopper", "--yes").exit_code == OK
    watched = run(runner, "models", "watch", "stopper")
    assert watched.exit_code == FAILED and "was cancelled" in watched.stderr
    shown = run(runner, "models", "list").stdout
    assert "CANCELLED" in shown
