"""The SDK's chat session (``GenerativeModel(...).start_chat()``) against a real server on the
tiny model: each message carries the conversation so far, streamed or not."""

from __future__ import annotations

import pytest

import tunesmith as ts
from tunesmith.errors import InvalidArgument
from tunesmith.records.conversations import MODEL, USER, Conversation, Turn
from tunesmith.sdk.generative import _prompt

GREEDY = {"temperature": 0, "max_output_tokens": 4}


@pytest.fixture()
def remote(server):
    ts.configure(api_endpoint=server.url, api_key="any")
    yield
    ts.configure()


def test_start_chat_keeps_the_conversation(remote):
    model = ts.GenerativeModel("models/text-bison-001", system_instruction="count")
    chat = model.start_chat()
    first = chat.send_message("one two", generation_config=GREEDY)
    second = chat.send_message("four", generation_config=GREEDY)
    assert second.usage_metadata["prompt_token_count"] > first.usage_metadata["prompt_token_count"]
    streamed = list(chat.send_message("six", stream=True, generation_config=GREEDY))
    assert streamed[-1].candidates[0].finish_reason in ("STOP", "MAX_TOKENS")
    assert [c.role for c in chat.history] == ["user", "model"] * 3
    assert chat.history[4].parts[0].text == "six"
    asked, answered = chat.rewind()
    assert asked.parts[0].text == "six" and len(chat.history) == 4
    # The same conversation counted by the server: the system instruction and every turn.
    counted = model.count_tokens(
        [{"role": c.role, "parts": [{"text": c.parts[0].text}]} for c in chat.history[:3]]
    )
    assert counted["total_tokens"] == second.usage_metadata["prompt_token_count"]


def test_contents_with_roles_are_a_conversation():
    turns = [
        {"role": "user", "parts": ["hi"]},
        {"role": "model", "parts": ["yo"]},
        {"role": "user", "parts": ["so?"]},
    ]
    assert _prompt(turns) == Conversation([Turn(USER, "hi"), Turn(MODEL, "yo"), Turn(USER, "so?")])
    assert _prompt("hi") == "hi" and _prompt(["a", "b"]) == "a\nb"  # text, as before
    assert _prompt("hi", "be brief") == Conversation([Turn(USER, "hi")], "be brief")
    with pytest.raises(InvalidArgument, match="history: each entry needs a 'role'"):
        ts.GenerativeModel("models/x").start_chat(history=["hi"])
