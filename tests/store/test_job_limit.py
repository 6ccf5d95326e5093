"""The jobs-per-user limit holds when one user's creates race (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

from tunesmith.errors import ResourceExhausted
from tunesmith.service import CreateTunedModelRequest
from tunesmith.service.tuning import TuningService
from tunesmith.types import TuningExample

LIMIT = 3
RACERS = 12


def test_racing_creates_of_one_user_stop_at_the_limit(job_service, tiny_model_dir):
    settings = dataclasses.replace(job_service.settings, max_jobs_per_user=LIMIT)
    tuning = TuningService(settings, job_service.store)
    start = threading.Barrier(RACERS)

    def create(i: int):
        req = CreateTunedModelRequest(
            source_model=str(tiny_model_dir),
            examples=[TuningExample("1", "2")],
            id=f"race-{i}",
            epoch_count=1,
            batch_size=1,
        )
        start.wait()
        try:
            return tuning.create_tuned_model(req, caller="alice")
        except ResourceExhausted as e:
            return e

    with ThreadPoolExecutor(RACERS) as pool:
        outcomes = list(pool.map(create, range(RACERS)))

    accepted = [o for o in outcomes if not isinstance(o, ResourceExhausted)]
    refused = [o for o in outcomes if isinstance(o, ResourceExhausted)]
    assert len(accepted) == LIMIT and len(refused) == RACERS - LIMIT, outcomes
    assert all(e.http_status == 429 for e in refused)
    assert all("TUNESMITH_MAX_JOBS_PER_USER=3" in e.message for e in refused)

    # Nothing partial: exactly the accepted models exist, each with its one queued operation.
    models, _ = tuning.list_tuned_models(page_size=100)
    assert sorted(m.name for m in models) == sorted(op.metadata.tuned_model for op in accepted)
    assert sorted(op.name for op in tuning.list_operations()) == sorted(op.name for op in accepted)

    # Another user has a place of their own; alice gets one back when a job ends.
    other = CreateTunedModelRequest(
        source_model=str(tiny_model_dir), examples=[TuningExample("1", "2")]
    )
    assert tuning.create_tuned_model(other, caller="bob").name
    tuning.cancel_operation(accepted[0].name)
    assert tuning.create_tuned_model(other, caller="alice").name
