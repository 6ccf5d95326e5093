"""A packaged base model converted once into the installation's shared cache is what every
fresh home loads: no conversion on a first run, the same weights a home's own conversion
gives; an entry made from another version of the package is not used."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.engine import base_models, gguf_import
from tunesmith.errors import FailedPrecondition
from tunesmith.jobs import prepare
from tunesmith.settings import get_settings


@pytest.fixture()
def packaged(tiny_gguf, tmp_path, monkeypatch):
    """The tiny GGUF as if a package (torch, installed here) shipped it; an empty shared cache."""
    monkeypatch.setenv(base_models.SHARED_ENV, str(tmp_path / "shared"))
    spec = base_models._custom(str(tiny_gguf))
    return dataclasses.replace(spec, source={**spec.source, "package": "torch"})


def test_a_fresh_home_reads_the_shared_conversion_without_converting(packaged, tiny_gguf, tmp_path):
    shared = base_models.share(packaged)
    assert shared.parent == tmp_path / "shared"
    progress = []
    home_dir = tmp_path / "home" / "base-models"
    assert base_models.is_materialized(packaged, home_dir)
    assert base_models.materialize(packaged, home_dir, progress.append) == shared
    assert progress == []  # nothing prepared: the first run goes straight to loading
    assert not home_dir.exists()

    # The same weights as the home's own conversion of the file.
    assert gguf_import.convert(tiny_gguf, tmp_path / "own")
    mine = load_file(shared / gguf_import.WEIGHTS_FILE)
    own = load_file(tmp_path / "own" / gguf_import.WEIGHTS_FILE)
    assert mine.keys() == own.keys()
    assert all(torch.equal(mine[k], own[k]) for k in mine)


def test_an_entry_from_another_package_version_is_converted_again_in_the_home(packaged, tmp_path):
    shared = base_models.share(packaged)
    complete = shared / ".complete"
    complete.write_text(json.dumps({**json.loads(complete.read_text()), "from": "torch==0.0.1"}))
    progress = []
    home_dir = tmp_path / "home" / "base-models"
    assert not base_models.is_materialized(packaged, home_dir)
    folder = base_models.materialize(packaged, home_dir, progress.append)
    assert folder.parent == home_dir and (folder / gguf_import.WEIGHTS_FILE).is_file()
    assert progress  # the home converted it itself


def test_only_packaged_models_are_shared(tiny_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv(base_models.SHARED_ENV, str(tmp_path / "shared"))
    with pytest.raises(FailedPrecondition, match="not a packaged model"):
        base_models.share(base_models._custom(str(tiny_gguf)))


def test_prepare_shared_converts_into_the_shared_cache(packaged, home, monkeypatch):
    monkeypatch.setattr(base_models, "resolve", lambda name, default, *a: packaged)
    said = []
    (folder,) = prepare.prepare(get_settings(), [packaged.name], said.append, shared=True)
    assert folder == base_models.shared_copy(packaged) and "prepared in" in said[0]
    prepare.prepare(get_settings(), [packaged.name], said.append, shared=True)
    assert "ready in" in said[1]  # once only


def test_a_shared_cache_it_cannot_write_is_a_clear_error(packaged, tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(base_models.SHARED_ENV, str(blocked / "cache"))
    with pytest.raises(FailedPrecondition, match=base_models.SHARED_ENV):
        base_models.share(packaged)


def test_setup_goes_on_when_compiling_ahead_fails(packaged, home, monkeypatch):
    """Compiling ahead only saves later jobs time: where it fails (no C++ compiler that
    works, say), `make setup` reports it and keeps the converted base."""
    from tunesmith.engine import recipe

    def fail(*_args):
        raise RuntimeError("no working C++ compiler")

    monkeypatch.setattr(base_models, "resolve", lambda name, default, *a: packaged)
    monkeypatch.setattr(recipe, "compile_ahead", fail)
    said: list[str] = []
    (folder,) = prepare.prepare(get_settings(), [packaged.name], said.append, True, True)
    assert folder == base_models.shared_copy(packaged)
    assert "not compiled ahead (RuntimeError: no working C++ compiler)" in said[-1]
