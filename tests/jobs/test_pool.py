"""`tunesmith worker --concurrency N`, locally and on a local Ray instance, as real processes."""

from __future__ import annotations

import signal

import pytest

from .conftest import wait_until
from .test_crash_resume import _checkpoint_steps, _op, _steps_done, _wait_done


def _cli_worker(procs, *args: str):
    return procs.start("-m", "tunesmith.cli", "worker", *args)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_pool_runs_every_job_once_and_hands_back_on_sigterm(job_service, make_job, procs):
    names = [make_job(examples=4, epochs=2, batch_size=2) for _ in range(4)]
    pool = _cli_worker(procs, "--concurrency", "2")
    for name in names:
        op = _wait_done(job_service, name)
        assert op.error is None, op.error
        assert [s.step for s in op.metadata.snapshots] == [1, 2, 3, 4]

    long = make_job(examples=40, epochs=50, batch_size=1)
    wait_until(lambda: _steps_done(job_service, long) >= 2)
    pool.send_signal(signal.SIGTERM)
    assert pool.wait(timeout=120) == 0
    assert not _op(job_service, long).done
    assert _checkpoint_steps(long) == [_steps_done(job_service, long)]
    assert job_service.store.jobs.claimable() == 1  # handed back, not waiting on a lease


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_ray_executor_runs_jobs_as_ray_tasks(job_service, make_job, procs):
    pytest.importorskip("ray")
    names = [make_job(examples=4, epochs=2, batch_size=2) for _ in range(2)]
    driver = _cli_worker(procs, "--executor", "ray", "--concurrency", "2")
    for name in names:
        op = _wait_done(job_service, name, timeout=300)
        assert op.error is None, (op.error, procs.output(driver)[-3000:])
        assert [s.step for s in op.metadata.snapshots] == [1, 2, 3, 4]
    assert "submitting" in procs.output(driver)
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(timeout=120) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_killed_pool_makes_its_workers_hand_their_jobs_back(
    job_service, make_job, procs, monkeypatch
):
    monkeypatch.setenv("TUNESMITH_LEASE_SECONDS", "600")  # no waiting for a lease to lapse
    name = make_job(examples=40, epochs=50, batch_size=1)
    pool = procs.start("-m", "tunesmith.jobs.pool", "--concurrency", "1")
    wait_until(lambda: _steps_done(job_service, name) >= 2)
    pool.send_signal(signal.SIGKILL)
    wait_until(lambda: job_service.store.jobs.claimable() == 1, what="the hand-back")
    assert _checkpoint_steps(name) == [_steps_done(job_service, name)]
