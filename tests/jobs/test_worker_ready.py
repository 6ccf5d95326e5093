"""A worker process that finds no job when it starts readies the default base model meanwhile
(``TUNESMITH_WORKER_READY``, on by default), so its first job starts training at once; the
job trains exactly as on a worker that did not."""

from __future__ import annotations

import signal

import pytest

from .conftest import wait_until
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
