"""Tuned models served through the service: servable when their run ends, one base for all."""

from __future__ import annotations

import pytest

from tunesmith.errors import InvalidArgument
from tunesmith.jobs.worker import Worker
from tunesmith.service import CreateTunedModelRequest, Service
from tunesmith.serving import Delta
from tunesmith.types import Generation, GenerationConfig, TuningExample


def tune(service: Service, model_id: str, word: str) -> str:
    rows = [TuningExample(f"{n}", word) for n in ("one", "two", "three", "four")]
    req = CreateTunedModelRequest(
        id=model_id,
        source_model="models/text-bison-001",
        examples=rows,
        epoch_count=10,
        batch_size=4,
        learning_rate=0.05,
    )
    service.tuning.create_tuned_model(req)
    assert Worker(service.settings, service.store).run_once()
    return f"tunedModels/{model_id}"


def test_two_tuned_models_answer_differently_from_one_base(service):
    greedy = GenerationConfig(temperature=0, max_output_tokens=8)
    first = tune(service, "says-hello", "hello world")
    a = service.generation.generate(first, "five", greedy)  # servable at once, no restart
    second = tune(service, "says-numbers", "100 1,000")
    b = service.generation.generate(second, "five", greedy)
    assert a.candidates[0].output != b.candidates[0].output
    assert "hello" in a.candidates[0].output
    server = service.generation.server
    assert len(server._bases) == 1  # both adapters on the one base model
    base = next(iter(server._bases.values()))
    loaded = base.llama.model.adapters if base.llama else base.cache.names()
    assert len(loaded) == 2


def test_stored_defaults_and_validation(service):
    model = tune(service, "defaults", "hello")
    tuned = service.tuning.get_tuned_model(model)
    assert tuned.temperature is not None  # the request leaves them out: the stored ones apply
    gen = service.generation.generate(model, "one", GenerationConfig(candidate_count=3))
    assert len(gen.candidates) == 3
    for bad, field in [
        (GenerationConfig(candidate_count=9), "candidate_count"),
        (GenerationConfig(stop_sequences=list("abcdef")), "stop_sequences"),
        (GenerationConfig(max_output_tokens=0), "max_output_tokens"),
        (GenerationConfig(temperature=-1), "temperature"),
    ]:
        with pytest.raises(InvalidArgument, match=field):
            service.generation.generate_stream(model, "one", bad)


def test_generate_stream_through_the_service(service):
    stream = service.generation.generate_stream(
        "models/text-bison-001", "one two", GenerationConfig(temperature=0, max_output_tokens=8)
    )
    events = list(stream)
    assert isinstance(events[-1], Generation)
    assert sum(isinstance(e, Delta) for e in events) >= 2


def test_sdk_generate_content_streams(service):
    from tunesmith.sdk.clients import EmbeddedClient
    from tunesmith.sdk.generative import GenerativeModel

    model = GenerativeModel("models/text-bison-001", client=EmbeddedClient(service.settings))
    config = {"temperature": 0, "max_output_tokens": 8}
    chunks = list(model.generate_content("one two", generation_config=config, stream=True))
    whole = model.generate_content("one two", generation_config=config)
    assert len(chunks) > 2
    assert "".join(c.text for c in chunks) == whole.text  # every chunk has .text
    assert chunks[-1].candidates[0].finish_reason == "MAX_TOKENS"
    assert chunks[-1].usage_metadata["candidates_token_count"] == 8
