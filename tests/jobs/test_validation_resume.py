"""A job with validation data, paused, crashed and resumed: still one loss per epoch.

Runs in-process (``run_job``) over SQLite and PostgreSQL; the crash is a worker that recorded
steps past its checkpoint, including an epoch's validation loss, and then lost its lease.
"""

from __future__ import annotations

import threading

import pytest

from tunesmith.jobs.worker import run_job
from tunesmith.store import JobStatus, utcnow
from tunesmith.types import TuningExample, TuningSnapshot

HELD_OUT = [TuningExample("20", "21"), TuningExample("30", "31"), TuningExample("one", "two")]
JOB = dict(examples=6, epochs=3, batch_size=2, validation_examples=HELD_OUT)  # 9 steps
EPOCH_ENDS = [(1, 3), (2, 6), (3, 9)]  # (epoch, step)


class ShutdownAt(threading.Event):
    """A shutdown that arrives as step ``step`` is reported (the run asks once per step)."""

    def __init__(self, step: int):
        super().__init__()
        self.step, self.asked = step, 0

    def is_set(self) -> bool:
        self.asked += 1
        return self.asked >= self.step


def _claim(job_service, worker: str, expected: str):
    s = job_service.settings
    job = job_service.store.jobs.claim(worker, s.lease_seconds, s.max_attempts)
    assert job is not None and expected.endswith(f"/operations/{job.operation_id}")
    return job


def _losses(job_service, name: str):
    return job_service.tuning.get_validation_losses(name.split("/operations/")[0]).losses


def _crash_after_epoch_two(job_service, name: str) -> None:
    """Attempt 1 pauses at step 4, just after epoch 1 ended (checkpointed there); attempt 2
    records steps 5 and 6 (epoch 2's end, with a loss) and dies before its next checkpoint."""
    settings, store = job_service.settings, job_service.store
    job = _claim(job_service, "w1", name)
    assert run_job(settings, store, job, ShutdownAt(4)) is None
    assert [(v.epoch, v.step) for v in _losses(job_service, name)] == EPOCH_ENDS[:1]
    job = _claim(job_service, "w2", name)
    for step in (5, 6):
        snapshot = TuningSnapshot(step, step // 3, 9.0, utcnow())
        held_out = 99.0 if step == 6 else None
        assert store.jobs.record_step(job.operation_id, "w2", snapshot, 60, held_out)
    store.jobs.give_up_lease(job.operation_id, "w2")
    assert [v.mean_loss for v in _losses(job_service, name)][1:] == [99.0]


def test_a_resumed_job_keeps_exactly_one_validation_loss_per_epoch(job_service, make_job):
    settings, store = job_service.settings, job_service.store
    reference, name = make_job(**JOB), make_job(**JOB)
    assert run_job(settings, store, _claim(job_service, "w0", reference)) is JobStatus.SUCCEEDED
    _crash_after_epoch_two(job_service, name)

    # Attempt 3 resumes from step 4: steps 5 and 6 run again and replace what attempt 2 wrote.
    assert run_job(settings, store, _claim(job_service, "w3", name)) is JobStatus.SUCCEEDED
    got, want = _losses(job_service, name), _losses(job_service, reference)
    assert [(v.epoch, v.step) for v in got] == EPOCH_ENDS == [(v.epoch, v.step) for v in want]
    assert [v.mean_loss for v in got] == pytest.approx([v.mean_loss for v in want], abs=1e-4)
    op = job_service.tuning.get_operation(name)
    assert [s.step for s in op.metadata.snapshots] == list(range(1, 10))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_resume_drops_the_losses_of_the_steps_it_redoes(job_service, make_job):
    name = make_job(**JOB)
    _crash_after_epoch_two(job_service, name)
    job = _claim(job_service, "w3", name)
    job_service.tuning.cancel_operation(name)  # the resumed run stops at its first step, 5
    assert run_job(job_service.settings, job_service.store, job) is JobStatus.CANCELLED
    assert [(v.epoch, v.step) for v in _losses(job_service, name)] == EPOCH_ENDS[:1]
    op = job_service.tuning.get_operation(name)
    assert [s.step for s in op.metadata.snapshots] == [1, 2, 3, 4, 5]
