"""Unmodified google-genai 1.46.0 against tunesmith: tunings and generate_content (+ SSE)."""

from __future__ import annotations

import time

import pytest

genai = pytest.importorskip("google.genai")
from google.genai import errors as genai_errors  # noqa: E402
from google.genai import types  # noqa: E402


@pytest.fixture()
def client(server):
    return genai.Client(api_key="any-key", http_options={"base_url": server.url})


def test_tune_get_and_generate(client):
    examples = [types.TuningExample(text_input=str(i), output=str(i + 1)) for i in range(6)]
    job = client.tunings.tune(
        base_model="models/text-bison-001",
        training_dataset=types.TuningDataset(examples=examples),
        config=types.CreateTuningJobConfig(
            epoch_count=1, batch_size=2, learning_rate=0.001, tuned_model_display_name="genai"
        ),
    )
    assert job.name.startswith("tunedModels/genai-")
    deadline = time.monotonic() + 300
    while not job.has_ended and time.monotonic() < deadline:
        time.sleep(0.3)
        job = client.tunings.get(name=job.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.tuned_model.model == job.name

    config = types.GenerateContentConfig(temperature=0, max_output_tokens=4)
    response = client.models.generate_content(model=job.name, contents="3", config=config)
    assert isinstance(response.text, str)
    assert response.usage_metadata.prompt_token_count > 0
    chunks = list(
        client.models.generate_content_stream(model=job.name, contents="3", config=config)
    )
    assert chunks
    assert "".join(c.text or "" for c in chunks) == response.text
    assert chunks[-1].candidates[0].finish_reason in (
        types.FinishReason.STOP,
        types.FinishReason.MAX_TOKENS,
    )


def test_errors_come_back_as_its_api_errors(client):
    with pytest.raises(genai_errors.ClientError) as info:
        client.tunings.get(name="tunedModels/not-there")
    assert info.value.code == 404
