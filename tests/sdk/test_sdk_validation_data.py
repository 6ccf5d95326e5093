"""``create_tuned_model(..., validation_data=...)`` in embedded mode: every form training data
takes, scored at each epoch's end, shown in ``op.history``; bad data names validation_data."""

from __future__ import annotations

import pandas as pd
import pytest

import tunesmith as ts
from tunesmith.types import ValidationLosses

PAIRS = [("1", "2"), ("3", "4"), ("8", "9"), ("one", "two"), ("three", "four"), ("-3", "-2")]


@pytest.fixture()
def tiny_default(home, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_model_dir))
    return tiny_model_dir


def test_a_held_out_csv_is_scored_at_the_end_of_each_epoch(tiny_default, tmp_path):
    held_out = tmp_path / "held_out.csv"
    held_out.write_text("question,answer\n20,21\none,two\nseven,eight\n")
    op = ts.create_tuned_model(
        "models/text-bison-001",
        [{"question": i, "answer": o} for i, o in PAIRS],
        validation_data=str(held_out),
        input_key="question",  # the keys apply to both data sets
        output_key="answer",
        id="held-out",
        epoch_count=2,
        batch_size=4,
    )  # 6 examples, batch 4, 2 epochs: 3 steps; the epochs end at steps 2 and 3
    assert op.result(timeout=300).state is ts.TunedModelState.ACTIVE

    history = op.history
    assert list(history.columns) == [
        "step",
        "epoch",
        "mean_loss",
        "compute_time",
        "validation_loss",
    ]
    assert history["validation_loss"].notna().tolist() == [False, True, True]
    assert history.dropna()["epoch"].tolist() == [1, 2]
    losses = op.validation_losses()
    assert losses.example_count == 3
    assert [v.mean_loss for v in losses.losses] == history.dropna()["validation_loss"].tolist()
    # Found again later (as from another process): the same history.
    assert ts.get_operation(op.name).history.equals(history)


def test_a_job_without_validation_data_has_no_validation_column(tiny_default):
    op = ts.create_tuned_model("models/text-bison-001", PAIRS, epoch_count=1, batch_size=3)
    op.result(timeout=300)
    assert "validation_loss" not in op.history.columns
    assert op.validation_losses() == ValidationLosses(example_count=0, losses=[])


def test_bad_validation_data_is_named_as_such_before_anything_is_stored(tiny_default, tmp_path):
    bad_line = tmp_path / "held_out.jsonl"
    bad_line.write_text('{"text_input": "1", "output": "2"}\n{"text_input": \n')
    cases = [
        ([("1", "2"), ("3", "")], "validation_data row 2: 'output' is empty"),
        (str(tmp_path / "missing.csv"), "validation_data: file not found"),
        (pd.DataFrame({"text_input": ["1"]}), "validation_data: missing column 'output'"),
        (str(bad_line), "validation_data line 2: not valid JSON"),
        ([], "validation_data: no examples were given"),
        (b"raw", "validation_data: pass a file path"),
    ]
    for data, message in cases:
        with pytest.raises(ts.InvalidArgument) as e:
            ts.create_tuned_model("models/text-bison-001", PAIRS, validation_data=data)
        assert message in e.value.message
    assert list(ts.list_tuned_models()) == []
