"""Worker processes killed, terminated and frozen for real; the operations then tell the truth.

Lease 2 s and a checkpoint every 3 steps (see the ``procs`` fixture).
"""

from __future__ import annotations

import signal

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.types import TunedModelState

from .conftest import wait_until

EXAMPLES, EPOCHS = 8, 2  # batch 1: 16 steps
STEPS = EXAMPLES * EPOCHS


def _op(job_service, name):
    return job_service.tuning.get_operation(name)


def _steps_done(job_service, name) -> int:
    return _op(job_service, name).metadata.completed_steps


def _attempts(job_service, name) -> int:
    from tunesmith.store.tables import OperationRow

    with job_service.store._sessions() as s:
        return s.get(OperationRow, name.split("/")[-1]).attempts


def _checkpoint_steps(name: str) -> list[int]:
    from tunesmith.settings import get_settings

    folder = get_settings().checkpoints_dir / name.split("/")[-1]
    return sorted(int(p.name.split("-")[1]) for p in folder.glob("step-*"))


def _adapter(job_service, name) -> dict[str, torch.Tensor]:
    op = _op(job_service, name)
    model_id = op.metadata.tuned_model.split("/")[-1]
    path = job_service.settings.stored_path(job_service.store.weights(model_id).path)
    return load_file(path / "adapter_model.safetensors")


def _wait_done(job_service, name, timeout=240):
    return wait_until(
        lambda: (op := _op(job_service, name)).done and op, timeout, f"{name} to finish"
    )


def _assert_same_model(job_service, resumed: str, reference: str) -> None:
    a, b = _adapter(job_service, resumed), _adapter(job_service, reference)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    la = [s.mean_loss for s in _op(job_service, resumed).metadata.snapshots]
    lb = [s.mean_loss for s in _op(job_service, reference).metadata.snapshots]
    assert la == pytest.approx(lb, abs=1e-4)


def test_a_sigkilled_worker_is_resumed_from_its_checkpoint(job_service, make_job, procs):
    name = make_job(examples=EXAMPLES, epochs=EPOCHS, batch_size=1)
    reference = make_job(examples=EXAMPLES, epochs=EPOCHS, batch_size=1)
    first = procs.worker()
    wait_until(lambda: _checkpoint_steps(name) and _steps_done(job_service, name) >= 4)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    stopped_at = _steps_done(job_service, name)
    assert 0 < stopped_at < STEPS, "the run should have been killed in the middle"

    second = procs.worker()
    op = _wait_done(job_service, name)
    assert op.error is None, op.error
    assert [s.step for s in op.metadata.snapshots] == list(range(1, STEPS + 1))
    assert "resumes after step" in procs.output(second)
    assert _wait_done(job_service, reference).error is None
    _assert_same_model(job_service, name, reference)
    assert _checkpoint_steps(name) == []  # cleaned up once finished


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sigterm_pauses_the_run_at_a_checkpoint_for_the_next_worker(job_service, make_job, procs):
    name = make_job(examples=EXAMPLES, epochs=EPOCHS, batch_size=1)
    first = procs.worker()
    wait_until(lambda: _steps_done(job_service, name) >= 2)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0
    paused_at = _steps_done(job_service, name)
    assert _checkpoint_steps(name) == [paused_at]  # checkpointed exactly where it stopped
    assert not _op(job_service, name).done

    second = procs.worker()
    op = _wait_done(job_service, name)
    assert op.error is None and [s.step for s in op.metadata.snapshots] == list(range(1, STEPS + 1))
    assert f"resumes after step {paused_at}" in procs.output(second)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_frozen_worker_loses_its_job_and_does_not_spoil_it(job_service, make_job, procs):
    name = make_job(examples=EXAMPLES, epochs=EPOCHS, batch_size=1)
    frozen = procs.worker()
    wait_until(lambda: _checkpoint_steps(name))
    frozen.send_signal(signal.SIGSTOP)  # stops heartbeating, like a machine that hangs
    try:
        procs.worker()
        wait_until(lambda: _steps_done(job_service, name) >= 5, what="the take-over")
    finally:
        frozen.send_signal(signal.SIGCONT)
    op = _wait_done(job_service, name)
    assert op.error is None
    assert [s.step for s in op.metadata.snapshots] == list(range(1, STEPS + 1))
    assert frozen.poll() is None  # it woke, saw the job had moved on, and waits for work


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_job_whose_workers_keep_dying_ends_failed(job_service, make_job, procs, monkeypatch):
    monkeypatch.setenv("TUNESMITH_MAX_ATTEMPTS", "2")
    name = make_job(examples=EXAMPLES, epochs=EPOCHS, batch_size=1)
    for attempt in (1, 2):
        worker = procs.worker()
        wait_until(lambda a=attempt: _attempts(job_service, name) == a, what="the claim")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    procs.worker()
    op = _wait_done(job_service, name)
    assert op.error.code == 10 and "interrupted 2 times" in op.error.message
    model = job_service.tuning.get_tuned_model(op.metadata.tuned_model)
    assert model.state == TunedModelState.FAILED and model.error == op.error.message


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_cancel_stops_a_job_in_a_worker_process(job_service, make_job, procs):
    name = make_job(examples=40, epochs=50, batch_size=1)
    after = make_job(examples=4, epochs=1, batch_size=2)
    worker = procs.worker()
    wait_until(lambda: _steps_done(job_service, name) >= 1)
    job_service.tuning.cancel_operation(name)
    op = _wait_done(job_service, name, timeout=60)
    assert op.error.code == 1
    assert job_service.tuning.get_tuned_model(op.metadata.tuned_model).state == (
        TunedModelState.FAILED
    )
    assert _wait_done(job_service, after).error is None  # the worker went on to the next job
    assert worker.poll() is None
