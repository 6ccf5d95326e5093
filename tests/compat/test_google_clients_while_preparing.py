"""Google's clients, unmodified, while a fresh home's first run prepares its base model: they
parse operations strictly (an unknown metadata field is a ParseError in google-generativeai
0.8.6), so the server keeps tunesmith's ``metadata.phase`` from them, and their documented
flows carry on to the tuned model."""

from __future__ import annotations

import time

import httpx
import pytest

genai = pytest.importorskip("google.generativeai")
google_genai = pytest.importorskip("google.genai")
from google.generativeai import client as genai_client  # noqa: E402

DATA = [{"text_input": str(i), "output": str(i + 1)} for i in range(4)]


def _preparing(url: str, model: str) -> bool:
    """What a caller other than Google's clients is told: the run prepares its base model."""
    (op,) = httpx.get(f"{url}/v1beta/{model}/operations").json()["operations"]
    return op["metadata"].get("phase", {}).get("name") == "PREPARING_BASE_MODEL"


def test_google_generativeai_polls_a_preparing_run_then_gets_its_model(
    preparing_server, held_conversion
):
    genai.configure(
        api_key="any-key", transport="rest", client_options={"api_endpoint": preparing_server}
    )
    try:
        op = genai.create_tuned_model(
            source_model="models/text-bison-001", training_data=DATA, epoch_count=1, batch_size=2
        )
        assert held_conversion.reached.wait(120)
        assert _preparing(preparing_server, op.metadata.tuned_model)
        for _ in range(3):  # each is a GET of the operation, parsed strictly
            op.update()
            assert op.metadata.completed_steps == 0 and op.metadata.total_steps == 2
        assert not op.done()
        held_conversion.release()
        seen = list(op.wait_bar(disable=True))
        assert seen  # the bar ran; its last yield may come before the final step was recorded
        op.update()
        assert op.done() and op.metadata.completed_steps == 2
        model = op.result()
        assert model.state.name == "ACTIVE"
        assert genai.GenerativeModel(model.name).generate_content("3").text is not None
    finally:
        genai_client._client_manager.clients.clear()


def test_google_genai_gets_a_preparing_tuning_job_then_its_model(preparing_server, held_conversion):
    from google.genai import types

    client = google_genai.Client(api_key="any-key", http_options={"base_url": preparing_server})
    examples = [types.TuningExample(text_input=d["text_input"], output=d["output"]) for d in DATA]
    job = client.tunings.tune(
        base_model="models/text-bison-001",
        training_dataset=types.TuningDataset(examples=examples),
        config=types.CreateTuningJobConfig(epoch_count=1, batch_size=2),
    )
    assert held_conversion.reached.wait(120)
    assert _preparing(preparing_server, job.name)
    got = client.tunings.get(name=job.name)
    assert not got.has_ended
    held_conversion.release()
    deadline = time.monotonic() + 120
    while not got.has_ended and time.monotonic() < deadline:
        time.sleep(0.2)
        got = client.tunings.get(name=job.name)
    assert got.state == types.JobState.JOB_STATE_SUCCEEDED
