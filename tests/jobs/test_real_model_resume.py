"""Crash and resume with the real packaged model (SmolLM2-135M-Instruct): slow."""

from __future__ import annotations

import signal

import pytest

from tunesmith.service import CreateTunedModelRequest, Service
from tunesmith.settings import get_settings
from tunesmith.types import TuningExample

from .conftest import Processes, wait_until
from .test_crash_resume import _assert_same_model, _checkpoint_steps, _steps_done, _wait_done

pytestmark = pytest.mark.slow

STEPS = 6


@pytest.fixture()
def real_service(real_home, monkeypatch):
    monkeypatch.setenv("TUNESMITH_LEASE_SECONDS", "5")
    monkeypatch.setenv("TUNESMITH_CHECKPOINT_EVERY", "2")
    service = Service(get_settings())
    yield service
    service.close()


def test_the_real_model_resumes_after_sigkill_as_if_never_interrupted(real_service, tmp_path):
    rows = [TuningExample(f"{i}", f"{i + 1}") for i in range(1, STEPS + 1)]

    def create() -> str:
        req = CreateTunedModelRequest(
            source_model="models/smollm2-135m-instruct",
            examples=rows,
            epoch_count=1,
            batch_size=1,
        )
        return real_service.tuning.create_tuned_model(req).name

    name, reference = create(), create()
    procs = Processes(tmp_path / "logs")
    try:
        first = procs.worker()
        wait_until(
            lambda: _checkpoint_steps(name) and _steps_done(real_service, name) >= 3,
            timeout=300,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert _steps_done(real_service, name) < STEPS

        second = procs.worker()
        op = _wait_done(real_service, name, timeout=600)
        assert op.error is None, op.error
        assert [s.step for s in op.metadata.snapshots] == list(range(1, STEPS + 1))
        assert "resumes after step" in procs.output(second)
        assert _wait_done(real_service, reference, timeout=600).error is None
        _assert_same_model(real_service, name, reference)
    finally:
        procs.cleanup()
