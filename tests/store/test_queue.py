"""The job queue on SQLite and PostgreSQL: atomic claims, leases, attempts, cancel."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from sqlalchemy import inspect, text

from tunesmith.store import JobStatus
from tunesmith.store.queue import IllegalTransition, move
from tunesmith.store.tables import OperationRow
from tunesmith.types import TunedModelState, TuningSnapshot

CLAIMER = """
import sys
from tunesmith.store import Store
store = Store(sys.argv[1])
while True:
    job = store.jobs.claim(sys.argv[2], lease_seconds=600)
    if job is None:
        break
    print(job.operation_id, flush=True)
"""


def _ids(name: str) -> tuple[str, str]:
    parts = name.split("/")
    return parts[1], parts[3]


def test_migrations_reach_head_and_are_idempotent(job_service, database_url):
    from tunesmith.store import Store

    Store(database_url).close()  # a second migrate is a no-op
    engine = job_service.store.engine
    tables = set(inspect(engine).get_table_names())
    assert {"tuned_models", "operations", "snapshots", "alembic_version"} <= tables
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version is not None


def test_racing_processes_never_claim_one_job_twice(make_job, database_url):
    names = [make_job(examples=2) for _ in range(12)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, database_url, f"w{i}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    claimed = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        claimed += out.split()
    assert sorted(claimed) == sorted(_ids(n)[1] for n in names)


def test_expired_lease_is_taken_over_and_the_old_holder_is_refused(make_job, job_service):
    name = make_job()
    jobs = job_service.store.jobs
    first = jobs.claim("a", lease_seconds=0.2)
    assert jobs.claim("b", lease_seconds=60) is None  # the lease is live
    time.sleep(0.5)
    second = jobs.claim("b", lease_seconds=60)
    assert second.operation_id == first.operation_id and second.attempt == 2
    snap = TuningSnapshot(1, 0, 1.0, first.model.create_time)
    assert not jobs.record_step(first.operation_id, "a", snap, 60)
    assert not jobs.heartbeat(first.operation_id, "a", 60)
    assert not jobs.finish(first.operation_id, "a", JobStatus.SUCCEEDED, adapter_path="x")
    assert jobs.record_step(second.operation_id, "b", snap, 60)
    assert not job_service.tuning.get_operation(name).done


def test_a_job_whose_worker_keeps_dying_fails_with_the_reason(make_job, job_service):
    name = make_job()
    jobs = job_service.store.jobs
    for worker in ("a", "b"):
        assert jobs.claim(worker, lease_seconds=0.05, max_attempts=2) is not None
        time.sleep(0.2)
    assert jobs.claim("c", lease_seconds=60, max_attempts=2) is None
    op = job_service.tuning.get_operation(name)
    assert op.done and op.error.code == 10
    assert "interrupted 2 times" in op.error.message
    model = job_service.tuning.get_tuned_model(op.metadata.tuned_model)
    assert model.state == TunedModelState.FAILED
    assert model.error == op.error.message


def test_cancel_a_queued_job_ends_it_at_once(make_job, job_service):
    name = make_job()
    op = job_service.tuning.cancel_operation(name)
    assert op.done and op.error.code == 1
    model = job_service.tuning.get_tuned_model(op.metadata.tuned_model)
    assert model.state == TunedModelState.FAILED and "Cancelled" in model.error
    assert job_service.store.jobs.claim("w", 60) is None


def test_cancel_a_running_job_tells_its_worker(make_job, job_service):
    name = make_job()
    jobs = job_service.store.jobs
    job = jobs.claim("w", 60)
    assert not job_service.tuning.cancel_operation(name).done  # the worker has to stop first
    assert not jobs.heartbeat(job.operation_id, "w", 60)
    assert jobs.holds(job.operation_id, "w")
    assert jobs.finish(job.operation_id, "w", JobStatus.CANCELLED, error_code=1, error_message="c")
    assert job_service.tuning.get_operation(name).error.code == 1


def test_cancel_a_job_whose_worker_died_ends_it_at_once(make_job, job_service):
    name = make_job()
    job_service.store.jobs.claim("dead", lease_seconds=0.05)
    time.sleep(0.2)
    op = job_service.tuning.cancel_operation(name)
    assert op.done and op.error.code == 1
    assert job_service.store.jobs.claim("w", 60) is None


def test_released_job_goes_back_to_the_queue_without_using_an_attempt(make_job, job_service):
    make_job()
    jobs = job_service.store.jobs
    job = jobs.claim("a", 60, max_attempts=1)
    assert jobs.release(job.operation_id, "a")
    again = jobs.claim("b", 60, max_attempts=1)
    assert again.operation_id == job.operation_id and again.attempt == 1


def test_rewind_drops_snapshots_after_the_checkpoint(make_job, job_service):
    name = make_job(examples=8, batch_size=1)
    jobs = job_service.store.jobs
    job = jobs.claim("w", 60)
    for step in range(1, 6):
        snap = TuningSnapshot(step, 0, 1.0 / step, job.model.create_time)
        assert jobs.record_step(job.operation_id, "w", snap, 60)
    assert jobs.rewind(job.operation_id, "w", 3)
    meta = job_service.tuning.get_operation(name).metadata
    assert [s.step for s in meta.snapshots] == [1, 2, 3] and meta.completed_steps == 3


def test_finished_jobs_cannot_move(make_job, job_service):
    name = make_job()
    job_service.tuning.cancel_operation(name)
    with job_service.store._sessions() as s:
        op = s.get(OperationRow, _ids(name)[1])
        with pytest.raises(IllegalTransition):
            move(op, JobStatus.RUNNING)
