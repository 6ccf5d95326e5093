"""Conversations in every way in, on the tiny model: the HTTP API's extension
(``trainingData.conversations``) next to Google's examples, the CLI detecting each JSONL row's
shape, and google-genai's unmodified chat session against tuned and base models."""

from __future__ import annotations

import json
import uuid

import pytest

from tunesmith.cli import app
from tunesmith.cli._common import OK, USAGE
from tunesmith_server import wait_done

genai = pytest.importorskip("google.genai")
from google.genai import types  # noqa: E402

VERTEX = {
    "systemInstruction": {"parts": [{"text": "count"}]},
    "contents": [
        {"role": "user", "parts": [{"text": "one two"}]},
        {"role": "model", "parts": [{"text": "three"}]},
        {"role": "user", "parts": [{"text": "four"}]},
        {"role": "model", "parts": [{"text": "five"}]},
    ],
}
OPENAI = {
    "messages": [
        {"role": "system", "content": "count"},
        {"role": "user", "content": "six"},
        {"role": "assistant", "content": "seven", "weight": 0},
        {"role": "user", "content": "eight"},
        {"role": "assistant", "content": "nine"},
    ]
}
OLD = {"text_input": "ten", "output": "eleven"}


def _uid(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _create(http, model_id: str, conversations, examples=()):
    task = {
        "hyperparameters": {"epochCount": 2, "batchSize": 2, "learningRate": 0.01},
        "trainingData": {
            "examples": {"examples": list(examples)},
            "conversations": conversations,
        },
    }
    body = {"baseModel": "models/text-bison-001", "tuningTask": task}
    return http.post("/v1beta/tunedModels", params={"tunedModelId": model_id}, json=body)


def test_http_tunes_all_three_shapes_and_chats_with_google_genai(http, server):
    model_id = _uid("chat")
    old = {"textInput": "ten", "output": "eleven"}
    created = _create(http, model_id, [VERTEX, OPENAI], [old])
    assert created.status_code == 200, created.text
    assert created.json()["metadata"]["totalSteps"] == 3  # ceil(2 epochs * 3 / 2)
    done = wait_done(http, created.json()["name"])
    assert "error" not in done, done
    got = http.get(f"/v1beta/tunedModels/{model_id}").json()
    assert "trainingData" not in json.dumps(got)  # Google's clients never see the data

    client = genai.Client(api_key="any-key", http_options={"base_url": server.url})
    config = types.GenerateContentConfig(
        system_instruction="count", temperature=0, max_output_tokens=4
    )
    for model in (f"tunedModels/{model_id}", "models/text-bison-001"):
        session = client.chats.create(model=model, config=config)
        first = session.send_message("one two")
        second = session.send_message("four")
        assert isinstance(first.text, str) and isinstance(second.text, str)
        # The second request carried the conversation: its prompt holds the first turns.
        assert second.usage_metadata.prompt_token_count > first.usage_metadata.prompt_token_count
        history = session.get_history()
        assert [c.role for c in history] == ["user", "model", "user", "model"]
        streamed = "".join(c.text or "" for c in session.send_message_stream("six"))
        # google-genai keeps each streamed chunk as a model turn; they are one answer.
        after = session.send_message("eight")
        assert isinstance(streamed, str) and isinstance(after.text, str)
        assert after.usage_metadata.prompt_token_count > second.usage_metadata.prompt_token_count


def test_http_refuses_bad_conversations_and_stores_nothing(http):
    model_id = _uid("bad")
    two_answers = {"contents": [*VERTEX["contents"], VERTEX["contents"][-1]]}
    bad = _create(http, model_id, [VERTEX, two_answers])
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert "training_data row 2, turn 5: two model (assistant) turns in a row" in error["message"]
    assert http.get(f"/v1beta/tunedModels/{model_id}").status_code == 404
    not_a_list = _create(http, model_id, {"contents": []})
    assert (
        not_a_list.status_code == 400 and "conversations" in not_a_list.json()["error"]["message"]
    )

    ends_on_model = {
        "contents": [VERTEX["contents"][0], VERTEX["contents"][1]],
        "systemInstruction": {"parts": [{"text": "count"}]},
    }
    answer = http.post("/v1beta/models/text-bison-001:generateContent", json=ends_on_model)
    assert answer.status_code == 400
    assert "contents, turn 2: the conversation must end with a user turn" in answer.text


def test_cli_tune_detects_each_rows_shape(home, tiny_model_dir, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_model_dir))
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (VERTEX, OPENAI, OLD)) + "\n")
    runner = CliRunner()
    tuned = runner.invoke(
        app,
        ["tune", str(path), "--id", "mixed", "--epochs", "2", "--batch-size", "2", "--json",
         "--last-turn-only"],
    )  # fmt: skip
    assert tuned.exit_code == OK, tuned.output
    op = json.loads(tuned.stdout)
    assert op["response"]["state"] == "ACTIVE" and op["metadata"]["totalSteps"] == 3

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(OLD) + "\n" + json.dumps({"messages": OPENAI["messages"][:4]}))
    refused = runner.invoke(app, ["tune", str(bad), "--detach"])
    assert refused.exit_code == USAGE
    assert "training_data row 2, turn 3: the conversation ends on a user turn" in refused.stderr
