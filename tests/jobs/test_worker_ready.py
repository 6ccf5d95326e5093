"""A worker process that finds no job when it starts readies the default base model meanwhile
(``TUNESMITH_WORKER_READY``, on by default), so its first job starts training at once; the
job trains exactly as on a worker that did not."""

from __future__ import annotations

import signal

import pytest

from .conftest import hang_hook_path, wait_until
from .test_crash_resume import _assert_same_model, _wait_done

READY = " ready in "  # the worker's log line


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_idle_worker_readies_the_default_base_and_trains_its_first_job_the_same(
    job_service, make_job, procs
):
    plain = procs.worker(TUNESMITH_WORKER_READY="0")
    wait_until(lambda: "started" in procs.output(plain), what="the worker to start")
    reference = make_job(examples=6, epochs=2)
    assert _wait_done(job_service, reference).error is None
    plain.send_signal(signal.SIGTERM)
    assert plain.wait(timeout=60) == 0
    assert READY not in procs.output(plain)

    readied = procs.worker()
    wait_until(lambda: READY in procs.output(readied), what="the worker to get ready")
    name = make_job(examples=6, epochs=2)
    assert _wait_done(job_service, name).error is None
    log = procs.output(readied)
    assert log.index(READY) < log.index(f"running {name.split('/')[-1]}")
    _assert_same_model(job_service, name, reference)


def test_a_worker_told_to_stop_while_readying_leaves_at_once_and_leaves_nothing(
    job_service, procs, tmp_path
):
    """Readying is throwaway work: a worker stopped during it (``tunesmith serve`` shut down
    just after starting) does not first finish loading. Here the readying run hangs after its
    first step (the test hook), so only leaving at once lets the worker go."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    worker = procs.worker(
        PYTHONPATH=hang_hook_path(), TUNESMITH_TEST_HANG_WORD="0 1", TMPDIR=str(scratch)
    )  # the readying run's first example is "0 1"
    wait_until(lambda: list(scratch.glob("tunesmith-ready-*")), what="the readying run")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert "stopped while readying" in procs.output(worker)
    assert [p.name for p in scratch.iterdir() if p.name.startswith("tunesmith-ready-")] == []
