"""The Vertex-style entry of the seed (003_*): from_pretrained, tune_model, get_tuned_model."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

import tunesmith as ts
from tunesmith.vertex import TextGenerationModel

PAIRS = [("1", "2"), ("3", "4"), ("8", "9"), ("one", "two"), ("three", "four")]


@pytest.fixture()
def tiny_default(home, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_model_dir))
    return tiny_model_dir


def test_tune_from_dataframe_and_jsonl_and_list_by_base(tiny_default, tmp_path):
    base = TextGenerationModel.from_pretrained("text-bison@001")
    frame = pd.DataFrame(
        {"input_text": [i for i, _ in PAIRS], "output_text": [o for _, o in PAIRS]}
    )
    job = base.tune_model(
        training_data=frame, train_steps=4, learning_rate_multiplier=1.0,
        model_display_name="vertex numbers",
    )  # fmt: skip
    assert job.operation.metadata.total_steps >= 4
    tuned = job.get_tuned_model(timeout=300)
    assert isinstance(tuned.predict("9", temperature=0, max_output_tokens=4).text, str)

    path = tmp_path / "data.jsonl"
    path.write_text(
        "".join(json.dumps({"input_text": i, "output_text": o}) + "\n" for i, o in PAIRS)
    )
    second = base.tune_model(training_data=str(path), train_steps=2).get_tuned_model(timeout=300)

    # A tuned model of another base is not listed for this one.
    other_base = shutil.copytree(tiny_default, tmp_path / "another-base")
    other = ts.create_tuned_model(str(other_base), PAIRS, id="other-base", epoch_count=1)
    other.result(timeout=300)
    names = base.list_tuned_model_names()
    assert sorted(names) == sorted([tuned.resource_name, second.resource_name])


def test_vertex_errors(tiny_default):
    with pytest.raises(ts.NotFound):
        TextGenerationModel.from_pretrained("no-such-model@001")
    base = TextGenerationModel.from_pretrained("text-bison@001")
    with pytest.raises(ts.InvalidArgument, match="missing column 'output_text'"):
        base.tune_model(training_data=pd.DataFrame({"input_text": ["1"], "output": ["2"]}))
    with pytest.raises(ts.InvalidArgument, match="gs://"):
        base.tune_model(training_data="gs://bucket/data.jsonl")
