"""Before its first step a run says what it does (both databases): queued, loading its base
model, or, on a home that has never converted that base, preparing it with its own progress;
from the first step on, tuning."""

from __future__ import annotations

import threading

from tunesmith.jobs.worker import Worker
from tunesmith.settings import get_settings
from tunesmith.store import JobStatus, utcnow
from tunesmith.types import Phase, RunPhase, TuningSnapshot

from .conftest import wait_until


def _phase(job_service, name):
    return job_service.tuning.get_operation(name).metadata.phase


def test_the_store_keeps_a_runs_phase_until_its_first_step(job_service, make_job):
    name = make_job()
    op_id = name.rsplit("/", 1)[1]
    jobs = job_service.store.jobs
    assert _phase(job_service, name) == RunPhase(Phase.QUEUED)
    assert jobs.claim("w1", lease_seconds=60) is not None
    assert _phase(job_service, name) == RunPhase(Phase.LOADING_BASE_MODEL)
    assert jobs.record_phase(op_id, "w1", Phase.PREPARING_BASE_MODEL, 0.25)
    assert _phase(job_service, name) == RunPhase(Phase.PREPARING_BASE_MODEL, 0.25)
    assert not jobs.record_phase(op_id, "another worker", Phase.LOADING_BASE_MODEL)
    assert jobs.record_step(op_id, "w1", TuningSnapshot(1, 1, 0.5, utcnow()), lease_seconds=60)
    assert _phase(job_service, name) == RunPhase(Phase.TUNING)
    assert jobs.release(op_id, "w1")  # a worker shutting down hands it back
    assert _phase(job_service, name) == RunPhase(Phase.QUEUED)
    jobs.claim("w2", lease_seconds=60)
    assert _phase(job_service, name) == RunPhase(Phase.LOADING_BASE_MODEL)
    job_service.tuning.cancel_operation(name)
    jobs.heartbeat(op_id, "w2", lease_seconds=60)
    assert jobs.finish(op_id, "w2", status=JobStatus.CANCELLED, error_code=1)
    assert _phase(job_service, name) is None  # done: the operation says how it ended


def test_a_first_run_prepares_its_base_model_once_then_tunes(
    job_service, make_job, tiny_gguf, held_conversion, monkeypatch
):
    jobs = job_service.store.jobs
    recorded = []
    record = jobs.record_phase
    monkeypatch.setattr(
        jobs, "record_phase", lambda *a, **k: recorded.append(k["phase"]) or record(*a, **k)
    )
    worker = Worker(get_settings(), store=job_service.store, poll_seconds=0.05)
    name = make_job(examples=4, batch_size=2, source_model=str(tiny_gguf))
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    assert held_conversion.reached.wait(120), "the conversion did not start"
    phase = wait_until(
        lambda: (p := _phase(job_service, name)).progress and p,
        what="the preparation's progress",
    )
    assert phase.name == Phase.PREPARING_BASE_MODEL and 0 < phase.progress < 1
    assert phase.description == "preparing base model (first run, once)"
    assert job_service.tuning.get_operation(name).metadata.completed_steps == 0
    held_conversion.release()
    thread.join(timeout=120)
    op = job_service.tuning.get_operation(name)
    assert op.done and op.error is None and op.metadata.phase is None
    assert op.metadata.completed_steps == 2
    assert set(recorded) == {Phase.PREPARING_BASE_MODEL, Phase.LOADING_BASE_MODEL}
    assert recorded[-1] == Phase.LOADING_BASE_MODEL  # once prepared, the run loads the base

    # The home has the converted base now: the next run has nothing to prepare.
    recorded.clear()
    second = make_job(examples=4, batch_size=2, source_model=str(tiny_gguf))
    assert worker.run_once()
    assert job_service.tuning.get_operation(second).error is None
    assert recorded == []


def test_cancelling_while_the_base_model_is_prepared_stops_it(
    job_service, make_job, tiny_gguf, held_conversion
):
    worker = Worker(get_settings(), store=job_service.store, poll_seconds=0.05)
    name = make_job(examples=4, batch_size=2, source_model=str(tiny_gguf))
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    assert held_conversion.reached.wait(120)
    job_service.tuning.cancel_operation(name)
    held_conversion.release()  # the next progress report sees the cancel and stops
    thread.join(timeout=120)
    op = job_service.tuning.get_operation(name)
    assert op.done and op.error.code == 1 and op.metadata.completed_steps == 0
    assert not list(worker.settings.base_models_dir.glob("*/.complete"))


def test_prepare_converts_ahead_of_the_first_run(job_service, make_job, tiny_gguf, monkeypatch):
    from tunesmith.jobs import prepare

    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_gguf))
    said = []
    (folder,) = prepare.prepare(get_settings(), [], say=said.append)
    assert (folder / "model.safetensors").is_file() and "prepared in" in said[0]
    assert prepare.main([]) == 0  # again: nothing left to do

    jobs = job_service.store.jobs
    recorded = []
    record = jobs.record_phase
    monkeypatch.setattr(
        jobs, "record_phase", lambda *a, **k: recorded.append(k["phase"]) or record(*a, **k)
    )
    name = make_job(examples=4, batch_size=2, source_model=str(tiny_gguf))
    assert Worker(get_settings(), store=job_service.store).run_once()
    assert job_service.tuning.get_operation(name).error is None
    assert recorded == []  # the first run had nothing to prepare


def test_prepare_names_a_base_model_it_cannot_find(home, capsys):
    from tunesmith.jobs import prepare

    assert prepare.main([str(home / "nowhere.gguf")]) == 1
    assert "not found" in capsys.readouterr().err
