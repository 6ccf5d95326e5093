"""The SDK's embedded mode end to end: Google's signatures, a background worker process that
outlives the caller, operations found again from another process. Tiny model, real runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

import tunesmith as ts
from tunesmith.service import CreateTunedModelRequest, Service
from tunesmith.settings import get_settings

PAIRS = [("1", "2"), ("3", "4"), ("8", "9"), ("one", "two"), ("three", "four"), ("-3", "-2")]
DATA = [{"text_input": i, "output": o} for i, o in PAIRS]


@pytest.fixture()
def tiny_default(home, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_model_dir))
    return tiny_model_dir


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ), check=True,
    )  # fmt: skip


def test_seed_flow_on_the_embedded_default(tiny_default):
    op = ts.create_tuned_model(
        source_model="models/text-bison-001",
        training_data=DATA,
        id="number-generator",
        display_name="number generator",
        epoch_count=3,
        batch_size=2,
        learning_rate=0.01,
    )
    assert (
        op.metadata.total_steps == 9 and op.metadata.tuned_model == "tunedModels/number-generator"
    )
    seen = [m.completed_steps for m in op.wait_bar(disable=True)]
    assert seen[-1] == 9 and seen == sorted(seen)
    model = op.result(timeout=300)
    assert model.state is ts.TunedModelState.ACTIVE and op.done() and not op.cancelled()
    assert op.exception() is None

    history = op.history
    assert isinstance(history, pd.DataFrame)
    assert list(history.columns) == ["step", "epoch", "mean_loss", "compute_time"]
    assert history["step"].tolist() == list(range(1, 10))

    text = ts.generate_text(model="tunedModels/number-generator", prompt="9", temperature=0)
    assert isinstance(text.result, str) and text.candidates[0]["output"] == text.result
    greedy = ts.GenerativeModel("tunedModels/number-generator", {"temperature": 0})
    assert greedy.generate_content("9").text == text.result
    streamed = list(
        ts.GenerativeModel("tunedModels/number-generator").generate_content("9", stream=True)
    )
    assert streamed and all(isinstance(chunk.text, str) for chunk in streamed)

    assert [m.name for m in ts.list_tuned_models()] == ["tunedModels/number-generator"]
    assert ts.get_tuned_model("number-generator").display_name == "number generator"
    assert ts.get_model("tunedModels/number-generator").name == "tunedModels/number-generator"
    updated = ts.update_tuned_model("tunedModels/number-generator", {"description": "counts"})
    assert updated.description == "counts"
    model.display_name = "renamed"
    assert ts.update_tuned_model(model).display_name == "renamed"

    # From another process: the operation and the model are found again.
    out = run_python(
        f"""
        import json, tunesmith as ts
        op = ts.get_operation({op.name!r})
        ops = [o.name for o in ts.list_operations()]
        # Generating starts a background thread; the script must still exit cleanly (0).
        ts.generate_text(model=op.result().name, prompt="9", max_output_tokens=2)
        print(json.dumps({{"done": op.done(), "model": op.result().name, "ops": ops,
                          "steps": len(op.history)}}))
        """
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "done": True, "model": "tunedModels/number-generator", "ops": [op.name], "steps": 9,
    }  # fmt: skip

    ts.delete_tuned_model("tunedModels/number-generator")
    with pytest.raises(ts.NotFound):
        ts.get_tuned_model("tunedModels/number-generator")
    with pytest.raises(ts.NotFound):
        ts.generate_text(model="tunedModels/number-generator", prompt="9")


def test_the_run_outlives_the_script_that_started_it(tiny_default):
    out = run_python(
        f"""
        import tunesmith as ts
        op = ts.create_tuned_model({str(tiny_default)!r}, {PAIRS!r}, id="survivor",
                                   epoch_count=2, batch_size=3)
        print(op.name)
        """
    )
    name = out.stdout.strip().splitlines()[-1]
    # The creating script has exited; the background worker finishes the job.
    model = ts.get_operation(name).result(timeout=300)
    assert model.name == "tunedModels/survivor" and model.state is ts.TunedModelState.ACTIVE


def test_a_failed_tuning_raises_a_typed_error(tiny_default, tmp_path):
    doomed = shutil.copytree(tiny_default, tmp_path / "doomed-base")
    svc = Service(get_settings())  # no worker is started for this create
    op = svc.tuning.create_tuned_model(
        CreateTunedModelRequest(source_model=str(doomed), examples=ts.Dataset(
            [ts.TuningExample(i, o) for i, o in PAIRS]), id="doomed")
    )  # fmt: skip
    svc.close()
    shutil.rmtree(doomed)  # the base model disappears before the run starts
    operation = ts.get_operation(op.name)
    with pytest.raises(ts.TunesmithError) as e:
        operation.result(timeout=300)
    assert "doomed-base" in str(e.value)
    model = ts.get_tuned_model("tunedModels/doomed")
    assert model.state is ts.TunedModelState.FAILED and model.error


def test_cancel_and_callbacks(tiny_default):
    op = ts.create_tuned_model(str(tiny_default), PAIRS * 50, id="long", epoch_count=50)
    assert op.cancel()
    called = []
    op.add_done_callback(lambda o: called.append(o.name))
    with pytest.raises(ts.errors.Cancelled):
        op.result(timeout=120)
    assert op.cancelled() and called == [op.name]
    assert ts.get_tuned_model("long").state is ts.TunedModelState.FAILED


def test_bad_requests_raise_typed_errors_before_anything_is_stored(tiny_default):
    with pytest.raises(ts.InvalidArgument, match="row 2"):
        ts.create_tuned_model(str(tiny_default), [("1", "2"), ("3", "")], id="bad")
    with pytest.raises(ts.InvalidArgument, match="tuned_model_id"):
        ts.create_tuned_model(str(tiny_default), PAIRS, id="Not Valid")
    ts.create_tuned_model(str(tiny_default), PAIRS, id="taken", epoch_count=1).result(timeout=300)
    with pytest.raises(ts.AlreadyExists):
        ts.create_tuned_model(str(tiny_default), PAIRS, id="taken")
    assert [m.name for m in ts.list_tuned_models()] == ["tunedModels/taken"]
    with pytest.raises(ts.InvalidArgument, match="temperature"):
        ts.generate_text(model="tunedModels/taken", prompt="1", temperature=7)
    with pytest.raises(ts.InvalidArgument, match="candidate_count"):
        ts.generate_text(model="tunedModels/taken", prompt="1", candidate_count=9)
