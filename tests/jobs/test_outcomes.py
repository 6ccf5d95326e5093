"""Every way a run ends is what the operation then says (in-process worker, both databases)."""

from __future__ import annotations

import threading

import pytest
import torch

from tunesmith.engine import recipe
from tunesmith.jobs.worker import Worker
from tunesmith.settings import get_settings
from tunesmith.types import TunedModelState

from .conftest import wait_until


def _worker(job_service, **settings) -> Worker:
    return Worker(get_settings(**settings), store=job_service.store, poll_seconds=0.05)


def _ended(job_service, name):
    op = job_service.tuning.get_operation(name)
    assert op.done, "the operation should have ended"
    return op, job_service.tuning.get_tuned_model(op.metadata.tuned_model)


def test_a_run_succeeds_with_every_snapshot_and_leaves_no_checkpoint(job_service, make_job):
    name = make_job(examples=6, epochs=2, batch_size=2)
    worker = _worker(job_service, checkpoint_every=2)
    assert worker.run_once()
    op, model = _ended(job_service, name)
    assert op.error is None and model.state == TunedModelState.ACTIVE
    assert [s.step for s in op.metadata.snapshots] == list(range(1, 7))
    assert not any(worker.settings.checkpoints_dir.glob("*/step-*"))


def test_a_nan_loss_fails_with_the_reason(job_service, make_job, monkeypatch):
    load = recipe.load_model

    def poisoned(base_dir):  # weights that have gone bad: the loss is NaN at step 1
        model = load(base_dir)
        with torch.no_grad():
            model.get_input_embeddings().weight.fill_(float("nan"))
        return model

    monkeypatch.setattr(recipe, "load_model", poisoned)
    name = make_job()
    _worker(job_service).run_once()
    op, model = _ended(job_service, name)
    assert op.error.code == 3 and "loss became" in op.error.message
    assert model.state == TunedModelState.FAILED and model.error == op.error.message


def test_out_of_memory_fails_with_advice(job_service, make_job, monkeypatch):
    def oom(*_a, **_k):
        raise MemoryError()

    monkeypatch.setattr(recipe, "collate", oom)
    name = make_job()
    _worker(job_service).run_once()
    op, _ = _ended(job_service, name)
    assert op.error.code == 8 and "smaller batch_size" in op.error.message


def test_an_exception_fails_with_its_message(job_service, make_job, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("the disk caught fire")

    monkeypatch.setattr(recipe, "collate", boom)
    name = make_job()
    _worker(job_service).run_once()
    op, model = _ended(job_service, name)
    assert op.error.code == 13 and "the disk caught fire" in op.error.message
    assert "the disk caught fire" in model.error


def test_a_base_model_that_cannot_load_fails(job_service, make_job, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", "hidden_size": ')
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")  # passes create
    name = make_job(source_model=str(broken))
    _worker(job_service).run_once()
    op, model = _ended(job_service, name)
    assert op.error.message and model.state == TunedModelState.FAILED


def test_cancel_stops_a_running_job(job_service, make_job):
    name = make_job(examples=40, epochs=50, batch_size=1)
    worker = _worker(job_service)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    wait_until(lambda: job_service.tuning.get_operation(name).metadata.completed_steps >= 2)
    job_service.tuning.cancel_operation(name)
    thread.join(timeout=60)
    assert not thread.is_alive()
    op, model = _ended(job_service, name)
    assert op.error.code == 1 and model.state == TunedModelState.FAILED
    assert op.metadata.completed_steps < 2000
    assert "Cancelled" in model.error


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_hung_run_gives_up_its_lease_for_a_retry(job_service, make_job, monkeypatch):
    release = threading.Event()

    def hang(r, on_step):
        release.wait(60)
        if not on_step(recipe.StepReport(1, 0, 1.0, 1)):  # woke up: the job has moved on
            raise recipe.Stopped("lease lost")
        return r.output_dir

    monkeypatch.setattr(recipe, "run", hang)
    name = make_job()
    hung = _worker(job_service, progress_timeout_seconds=0.5)
    thread = threading.Thread(target=hung.run_once)
    thread.start()
    jobs = job_service.store.jobs
    wait_until(lambda: jobs.holds(name.split("/")[-1], hung.worker_id), what="the claim")
    retry = wait_until(lambda: jobs.claim("next", 60), what="the hung job to be claimable")
    assert retry.attempt == 2
    release.set()
    thread.join(timeout=60)
    assert not job_service.tuning.get_operation(name).done  # still the retry's to finish


def test_checkpoints_of_jobs_that_ended_without_their_worker_are_swept(job_service, make_job):
    import time

    dead, alive = make_job(), make_job()
    jobs = job_service.store.jobs
    jobs.claim("dead-worker", lease_seconds=0.05)
    jobs.claim("live-worker", lease_seconds=600)
    worker = _worker(job_service)
    folders = {}
    for name in (dead, alive):
        folders[name] = worker.settings.checkpoints_dir / name.split("/")[-1] / "step-000003"
        folders[name].mkdir(parents=True)
    time.sleep(0.2)
    assert job_service.tuning.cancel_operation(dead).done  # its worker is gone
    worker.sweep_checkpoints()
    assert not folders[dead].exists() and folders[alive].exists()
