"""``/chat/completions`` and ``/completions`` with the real ``openai`` client, in-process, on
the tiny model: base, tuned (both names) and checkpoint models, streamed and not."""

from __future__ import annotations

import openai
import pytest

FT = "ft:tiny:alice:numbers:ftjob-numbers"
ASK = [{"role": "user", "content": "one two three"}]


def chat(client, model="tiny", **kw):
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", 8)
    return client.chat.completions.create(model=model, messages=kw.pop("messages", ASK), **kw)


def test_chat_answers_with_usage(alice):
    r = chat(alice)
    assert r.object == "chat.completion" and r.model == "tiny" and r.id.startswith("chatcmpl-")
    (choice,) = r.choices
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_chat_is_the_same_answer_in_pieces(alice):
    whole = chat(alice, max_tokens=12).choices[0].message.content
    chunks = list(chat(alice, max_tokens=12, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert reasons[-1] in ("stop", "length") and set(reasons[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_the_stream_ends_with_done(oai_app, keys):
    _app, http = oai_app
    body = {"model": "tiny", "messages": ASK, "max_tokens": 4, "stream": True}
    auth = {"Authorization": f"Bearer {keys['alice']}"}
    r = http.post("/openai/v1/chat/completions", json=body, headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line for line in r.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)


def test_n_candidates_streamed_and_not(alice):
    r = chat(alice, n=3, temperature=1.0, max_tokens=6)
    assert [c.index for c in r.choices] == [0, 1, 2]
    chunks = list(chat(alice, n=2, temperature=1.0, max_tokens=6, stream=True))
    assert {ch.index for c in chunks for ch in c.choices} == {0, 1}


def test_a_seed_makes_sampling_repeatable(alice):
    def sample(seed):
        r = chat(alice, temperature=1.5, max_tokens=16, seed=seed, n=2)
        return [c.message.content for c in r.choices]

    first = sample(7)
    assert sample(7) == first
    assert first[0] != first[1]  # candidates draw from generators of their own
    assert any(sample(s) != first for s in (8, 9, 10))


def test_stop_sequences_end_the_answer(alice):
    full = chat(alice, max_tokens=16).choices[0].message.content
    cut = full.strip()[:3][-1]
    r = chat(alice, max_tokens=16, stop=[cut])
    assert cut not in r.choices[0].message.content and r.choices[0].finish_reason == "stop"


def test_completions_streamed_and_not(alice):
    r = alice.completions.create(model="tiny", prompt="one two", max_tokens=8, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text and r.usage.completion_tokens > 0
    streamed = alice.completions.create(
        model="tiny", prompt="one two", max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == r.choices[0].text


@pytest.mark.parametrize("model", [FT, "tunedModels/numbers"])
def test_tuned_models_by_either_name(alice, model):
    r = chat(alice, model=model)
    assert r.model == model and r.choices[0].message.content is not None


def test_the_checkpoint_kept_at_an_epochs_end_answers(alice):
    # "numbers": 8 examples, batch 4, 1 epoch: step 2 ends the epoch and is kept, step 1 not
    with pytest.raises(openai.NotFoundError):
        chat(alice, model=f"{FT}:ckpt-step-1")
    r = chat(alice, model=f"{FT}:ckpt-step-2")
    assert r.choices[0].message.content == chat(alice, model=FT).choices[0].message.content
    assert alice.models.retrieve(f"{FT}:ckpt-step-2").id == f"{FT}:ckpt-step-2"
    with pytest.raises(openai.NotFoundError):
        chat(alice, model=f"{FT}:ckpt-step-3")


def test_another_key_cannot_use_a_tuned_model(bob):
    for model in (FT, "tunedModels/numbers", f"{FT}:ckpt-step-2"):
        with pytest.raises(openai.NotFoundError):
            chat(bob, model=model)
        with pytest.raises(openai.NotFoundError):
            bob.completions.create(model=model, prompt="1")


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"n": 9}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"temperature": 9}, "temperature"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"seed": -1}, "seed"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"logprobs": True}, "logprobs"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, "messages"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "1 " * 70_000}]}, "messages"),
    ],
)
def test_bad_requests_are_400_naming_the_parameter(alice, change, param):
    kw = {"max_tokens": 8, **change}
    with pytest.raises(openai.BadRequestError) as e:
        chat(alice.with_options(max_retries=2), **kw)
    assert e.value.body["param"] == param, e.value.body
    assert e.value.response.headers["x-should-retry"] == "false"


def test_an_unknown_model_is_404(alice):
    with pytest.raises(openai.NotFoundError):
        chat(alice, model="gpt-4o-mini")


CHAT = [
    {"role": "system", "content": "Count on."},
    {"role": "user", "content": "one two"},
    {"role": "assistant", "content": "three four"},
    {"role": "user", "content": "five"},
]


def test_a_chat_is_the_same_conversation_as_googles_contents(alice, oai_app, keys):
    """Both dialects hand the service one conversation, rendered by one rule: the same
    answer and the same prompt length."""
    _app, http = oai_app
    r = chat(alice, messages=CHAT, max_tokens=10)
    google = {
        "systemInstruction": {"parts": [{"text": "Count on."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "one two"}]},
            {"role": "model", "parts": [{"text": "three four"}]},
            {"role": "user", "parts": [{"text": "five"}]},
        ],
        "generationConfig": {"temperature": 0, "maxOutputTokens": 10},
    }
    g = http.post(
        "/v1beta/models/tiny:generateContent",
        json=google,
        headers={"x-goog-api-key": keys["alice"]},
    ).json()
    assert r.choices[0].message.content == g["candidates"][0]["content"]["parts"][0]["text"]
    assert r.usage.prompt_tokens == g["usageMetadata"]["promptTokenCount"]
    assert r.usage.prompt_tokens > chat(alice, messages=CHAT[-1:]).usage.prompt_tokens
