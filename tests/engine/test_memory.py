"""A run that cannot fit is refused before it starts, with a clear error."""

from __future__ import annotations

import pytest

from tunesmith.engine import memory, models, recipe
from tunesmith.errors import ResourceExhausted
from tunesmith.jobs.worker import Worker
from tunesmith.settings import get_settings

GiB = memory.GiB


def test_the_estimate_grows_with_batch_length_and_full_tuning(tiny_model_dir):
    small = memory.estimate(tiny_model_dir, "lora", 4, 32, bf16=True)
    assert memory.estimate(tiny_model_dir, "lora", 8, 32, bf16=True).total > small.total
    assert memory.estimate(tiny_model_dir, "lora", 4, 64, bf16=True).total > small.total
    full = memory.estimate(tiny_model_dir, "full", 4, 32, bf16=True)
    assert full.trainable > small.trainable and full.weights > small.weights
    assert memory.count_parameters(tiny_model_dir) == sum(
        p.numel() for p in models.load_model(tiny_model_dir).parameters()
    )


def test_a_huge_batch_is_refused_with_what_it_needs(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * GiB)
    memory.check(tiny_model_dir, "lora", 4, 64, bf16=True)  # fits
    with pytest.raises(ResourceExhausted) as err:
        memory.check(tiny_model_dir, "lora", 64, 8192, bf16=True)
    assert "batch_size 64" in err.value.message and "smaller batch_size" in err.value.message
    assert err.value.grpc_code == 8


def test_the_run_fails_before_loading_the_model(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 0)
    monkeypatch.setattr(recipe, "load_model", lambda _d: pytest.fail("loaded the model"))
    r = recipe.Recipe(tiny_model_dir, [("1", "2")] * 4, tmp_path / "out", batch_size=4)
    with pytest.raises(ResourceExhausted):
        recipe.run(r)


def test_the_worker_fails_the_job_with_the_message(job_service, make_job, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: GiB // 2)
    name = make_job()
    Worker(get_settings(), store=job_service.store, poll_seconds=0.05).run_once()
    op = job_service.tuning.get_operation(name)
    assert op.done and op.error.code == 8
    assert "GiB of memory" in op.error.message and "smaller batch_size" in op.error.message
