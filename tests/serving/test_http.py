"""Serving through the HTTP API: true streaming, and 429 when the generation queue is full."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tunesmith_server import Server, server_env

URL = "/v1beta/models/text-bison-001"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    """A server whose generation queue holds one waiting request."""
    home = tmp_path_factory.mktemp("serving-home")
    env = server_env(
        home,
        str(tiny_model_dir),
        TUNESMITH_GENERATION_QUEUE="1",
        TUNESMITH_GENERATION_BATCH_ROWS="8",
    )
    s = Server(home, env)
    yield s
    s.stop()


def body(max_tokens: int = 12, **config) -> dict:
    config = {"temperature": 0, "maxOutputTokens": max_tokens, **config}
    return {"contents": [{"parts": [{"text": "one two"}]}], "generationConfig": config}


def test_sse_stream_sends_chunks_as_they_come(server):
    with httpx.Client(base_url=server.url, timeout=120) as http:
        with http.stream("POST", f"{URL}:streamGenerateContent?alt=sse", json=body()) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
        full = http.post(f"{URL}:generateContent", json=body()).json()
    assert len(events) > 3
    for e in events:  # google-generativeai's .text needs a text part in every chunk
        assert all("text" in c["content"]["parts"][0] for c in e["candidates"])
    text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
    assert text == full["candidates"][0]["content"]["parts"][0]["text"]
    last = events[-1]
    assert last["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert last["usageMetadata"]["candidatesTokenCount"] == 12
    assert last["usageMetadata"]["promptTokenCount"] > 0


def test_json_array_stream_and_candidates(server):
    with httpx.Client(base_url=server.url, timeout=120) as http:
        r = http.post(f"{URL}:streamGenerateContent", json=body(6, candidateCount=2))
    chunks = r.json()
    assert r.status_code == 200 and isinstance(chunks, list) and len(chunks) > 2
    indexes = {c["index"] for chunk in chunks for c in chunk["candidates"]}
    assert indexes == {0, 1}
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 12


def test_bad_parameters_are_400_naming_the_field(server):
    with httpx.Client(base_url=server.url, timeout=120) as http:
        r = http.post(f"{URL}:streamGenerateContent?alt=sse", json=body(candidateCount=9))
        assert r.status_code == 400 and "candidate_count" in r.json()["error"]["message"]
        r = http.post(f"{URL}:generateContent", json=body(stopSequences=list("abcdef")))
        assert r.status_code == 400 and "stop_sequences" in r.json()["error"]["message"]


def test_over_full_queue_is_429_resource_exhausted(server):
    # Long answers keep the scheduler busy; with one waiting place most of these are refused.
    long = body(100, candidateCount=8, temperature=1.0)

    def post(_):
        with httpx.Client(base_url=server.url, timeout=300) as http:
            return http.post(f"{URL}:generateContent", json=long)

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(post, range(12)))
    codes = [a.status_code for a in answers]
    assert 200 in codes and 429 in codes and set(codes) <= {200, 429}
    refused = next(a for a in answers if a.status_code == 429).json()["error"]
    assert refused["status"] == "RESOURCE_EXHAUSTED" and "queue" in refused["message"]
    with httpx.Client(base_url=server.url, timeout=120) as http:  # and it recovers
        assert http.post(f"{URL}:generateContent", json=body(4)).status_code == 200


def test_remote_sdk_streams(server):
    from tunesmith.sdk.generative import GenerativeModel
    from tunesmith.sdk.remote import RemoteClient

    client = RemoteClient(server.url)
    model = GenerativeModel("models/text-bison-001", client=client)
    config = {"temperature": 0, "max_output_tokens": 8}
    chunks = list(model.generate_content("one two", generation_config=config, stream=True))
    whole = model.generate_content("one two", generation_config=config)
    client.close()
    assert len(chunks) > 2 and "".join(c.text for c in chunks) == whole.text
    assert chunks[-1].candidates[0].finish_reason == "MAX_TOKENS"
