"""A converted base lets go of the checkpoint file transformers mapped into memory: the file's
pages would otherwise stay in the process, a second copy of the model beside the converted
one (513 MiB of a tuning worker's RSS for the packaged base)."""

from __future__ import annotations

import gc
import shutil
import sys
from pathlib import Path

import pytest
import torch

from tunesmith.engine import models, recipe
from tunesmith.serving import weights

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the process's mappings in /proc"
)


def _mapped(path: Path) -> bool:
    gc.collect()
    return str(path.resolve()) in Path("/proc/self/maps").read_text()


@pytest.fixture()
def own_model(tiny_model_dir, tmp_path) -> Path:
    """A copy of the tiny model whose file no other test maps."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def test_a_loaded_model_maps_its_checkpoint_file(own_model):
    model = models.load_model(own_model)  # the premise: without the copies, the file stays
    assert _mapped(own_model / "model.safetensors")
    del model
    assert not _mapped(own_model / "model.safetensors")


def test_the_bf16_training_base_lets_the_file_go(own_model, tmp_path):
    models.clear_cache()
    job = recipe.Recipe(own_model, [("1", "2")], tmp_path / "out", mixed_precision="bf16")
    model = models.prepare(job, bf16=True)
    try:
        assert not _mapped(own_model / "model.safetensors")
        assert model.get_input_embeddings().weight.dtype == torch.float32  # kept, as a copy
    finally:
        models.release(model)
        models.clear_cache()


def test_the_float16_serving_base_lets_the_file_go(own_model):
    model = weights.halve(models.load_model(own_model))
    assert not _mapped(own_model / "model.safetensors")
    assert model.model.norm.weight.dtype == torch.float32
