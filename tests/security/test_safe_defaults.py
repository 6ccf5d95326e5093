"""Safe by default: no pickle anywhere, names never reach the file system as paths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tunesmith.errors import NotFound
from tunesmith.service.permissions import parse_permission_name
from tunesmith.service.tuning import parse_model_name, parse_operation_name

SRC = Path(__file__).resolve().parents[2] / "src" / "tunesmith"
UNSAFE = [
    re.compile(r"\bimport pickle\b|\bpickle\.loads?\b|\bcPickle\b|\bdill\b|\bjoblib\.load\b"),
    re.compile(r"\btorch\.load\((?![^)]*weights_only=True)"),
    re.compile(r"allow_pickle\s*=\s*True"),
]


def test_no_pickle_loading_in_the_source():
    hits = []
    for path in SRC.rglob("*.py"):
        for no, line in enumerate(path.read_text().splitlines(), start=1):
            if any(p.search(line) for p in UNSAFE):
                hits.append(f"{path.relative_to(SRC)}:{no}: {line.strip()}")
    assert hits == []


@pytest.mark.parametrize(
    "name",
    ["../x", "tunedModels/../../etc", "a/b", "..", "%2e%2e", "x\x00", "/etc/passwd", "A", ""],
)
def test_names_that_could_be_paths_are_not_found(name):
    with pytest.raises(NotFound):
        parse_model_name(name)
    with pytest.raises(NotFound):
        parse_operation_name(f"tunedModels/{name}/operations/x")
    with pytest.raises(NotFound):
        parse_permission_name(f"tunedModels/{name}/permissions/x")


def test_adapters_live_under_the_operation_id():
    worker = (SRC / "jobs" / "worker.py").read_text()
    assert "output_dir=settings.adapters_dir / job.operation_id" in worker


@pytest.fixture()
def pickle_only_model(tiny_model_dir, tmp_path) -> Path:
    """The tiny model as an old checkpoint: ``pytorch_model.bin`` and no safetensors."""
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "old-checkpoint"
    shutil.copytree(tiny_model_dir, folder)
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")
    return folder


def test_a_base_model_folder_with_pickle_weights_only_is_refused_at_create(
    service, pickle_only_model
):
    from tunesmith.errors import InvalidArgument
    from tunesmith.service import CreateTunedModelRequest
    from tunesmith.types import TuningExample

    req = CreateTunedModelRequest(str(pickle_only_model), [TuningExample("1", "2")], id="old")
    with pytest.raises(InvalidArgument) as err:
        service.tuning.create_tuned_model(req)
    message = err.value.message
    assert message.startswith(f"source_model: base model folder {pickle_only_model} holds")
    assert "pytorch_model.bin" in message and "Convert it to safetensors" in message
    assert service.tuning.list_tuned_models()[0] == []  # nothing stored


def test_loading_a_base_model_never_unpickles(pickle_only_model, monkeypatch):
    import torch

    from tunesmith.engine.models import load_model

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(OSError, match="safetensors"):
        load_model(pickle_only_model)
