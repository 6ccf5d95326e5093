"""Conversations as training data: one parser for Vertex's, OpenAI's and the old shapes, errors
that name the row, the turn and the field, and the same conversation after the wire and the
store."""

from __future__ import annotations

import json

import pytest

from tunesmith import data, wire
from tunesmith.errors import InvalidArgument
from tunesmith.records.conversations import MODEL, USER, Conversation, Turn
from tunesmith.service import CreateTunedModelRequest
from tunesmith.store.queue import _examples, examples_to_json
from tunesmith.types import TuningExample

PIRATE = Conversation(
    [
        Turn(USER, "My name is Ada."),
        Turn(MODEL, "Ahoy, Ada!", 0),
        Turn(USER, "What is my name?"),
        Turn(MODEL, "Ada, matey."),
    ],
    "You are a pirate.",
)
VERTEX = {
    "systemInstruction": {"role": "system", "parts": [{"text": "You are a pirate."}]},
    "contents": [
        {"role": "user", "parts": [{"text": "My name is Ada."}]},
        {"role": "model", "parts": [{"text": "Ahoy, Ada!"}], "weight": 0},
        {"role": "user", "parts": [{"text": "What is my name?"}]},
        {"role": "model", "parts": [{"text": "Ada, "}, {"text": "matey."}]},
    ],
}
OPENAI = {
    "messages": [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Ahoy, Ada!", "weight": 0},
        {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
        {"role": "assistant", "content": "Ada, matey.", "weight": 1},
    ]
}


def test_vertex_and_openai_rows_are_the_same_conversation(tmp_path):
    vertex, openai, old = data.load_examples([VERTEX, OPENAI, {"text_input": "1", "output": "2"}])
    assert vertex == PIRATE
    assert openai.turns[-1].weight == 1 and openai.system_instruction == PIRATE.system_instruction
    assert [t.text for t in openai.turns] == [t.text for t in PIRATE.turns]
    assert old == TuningExample("1", "2")
    # A JSONL file may mix the shapes; each row's is detected.
    path = tmp_path / "chats.jsonl"
    path.write_text(
        "\n".join(json.dumps(r) for r in (VERTEX, OPENAI, {"text_input": "a", "output": "b"}))
    )
    assert data.load_examples(str(path))[0] == PIRATE
    snake = {"system_instruction": VERTEX["systemInstruction"], "contents": VERTEX["contents"]}
    assert data.load_examples([snake]) == [PIRATE]


def test_last_turn_only_weights_out_the_earlier_answers():
    (conv,) = data.load_examples([OPENAI | {}], last_turn_only=True)
    assert [conv.learns_from(i) for i in range(4)] == [False, False, False, True]
    single = Conversation.single("q", "a")
    assert single.is_single and single.last_turn_only() == single


def turns(*pairs, **row):
    return {"contents": [{"role": r, "parts": [{"text": t}]} for r, t in pairs], **row}


@pytest.mark.parametrize(
    "row, message",
    [
        (turns(("user", "a"), ("model", "b"), ("model", "c")), "row 2, turn 3: two model"),
        (turns(("user", "a"), ("model", "b"), ("user", "c")), "row 2, turn 3: the conversation ends on a user turn"),
        (turns(("user", "a"), ("assistant", "b")), "row 2, turn 2: unknown 'role' 'assistant'"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}, "row 2, messages[2] (turn 2): unknown 'role' 'bot'"),
        ({"messages": [{"role": "user", "content": "a", "weight": 1}, {"role": "assistant", "content": "b"}]}, "row 2, messages[1] (turn 1): 'weight' is only for assistant"),
        ({"contents": [{"role": "user", "parts": [{"text": "a"}], "weight": 0}, {"role": "model", "parts": [{"text": "b"}]}]}, "row 2, turn 1: 'weight' is only for model"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 2}]}, "row 2, turn 2: 'weight' must be 0 or 1"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0}]}, "row 2: every model turn has weight 0"),
        (turns(("model", "b")), "row 2, turn 1: a conversation starts with a user turn"),
        (turns(("user", " "), ("model", "b")), "row 2, turn 1: the user turn's text is empty"),
        ({"contents": [{"role": "user", "parts": [{"inlineData": {}}]}]}, "row 2, turn 1: 'parts': every part needs 'text'"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}]}, "row 2, messages[2]: a system message must come before"),
        ({"contents": "hello"}, "row 2: 'contents' must be a list"),
    ],
)  # fmt: skip
def test_bad_conversations_name_row_turn_and_field(row, message):
    with pytest.raises(InvalidArgument, match=r"^training_data " + _escape(message)):
        data.load_examples([{"text_input": "1", "output": "2"}, row])


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_limits_on_turns_and_characters(monkeypatch):
    monkeypatch.setattr(data, "MAX_TURNS", 4)
    monkeypatch.setattr(data, "MAX_TURN_CHARS", 10)
    long = turns(*[("user", "a"), ("model", "b")] * 3)
    with pytest.raises(InvalidArgument, match=r"row 1: 6 turns is over the limit of 4"):
        data.load_examples([long])
    with pytest.raises(InvalidArgument, match=r"row 1, turn 2: the text has 11 characters"):
        data.load_examples([turns(("user", "a"), ("model", "x" * 11))])
    with pytest.raises(InvalidArgument, match=r"row 1: 'systemInstruction' has 11 characters"):
        data.load_examples([turns(("user", "a"), ("model", "b"), systemInstruction="s" * 11)])
    with pytest.raises(InvalidArgument, match=r"^validation_data row 1, turn 3: two model"):
        data.load_examples(
            [turns(("user", "a"), ("model", "bb"), ("model", "c"))], field="validation_data"
        )


def test_one_conversation_instead_of_a_list_is_refused():
    with pytest.raises(InvalidArgument, match="this is one conversation; pass a list"):
        data.load_examples(VERTEX)


def test_the_store_keeps_conversations_beside_examples():
    rows = [TuningExample("1", "2"), PIRATE, Conversation.single("q", "a")]
    assert _examples(examples_to_json(rows)) == rows
    # Rows stored before conversations existed read as they always did.
    assert _examples('[["1", "2"]]') == [TuningExample("1", "2")]


def test_the_wire_carries_conversations_in_tunesmiths_extension():
    req = CreateTunedModelRequest(
        source_model="models/x",
        examples=[TuningExample("1", "2"), PIRATE],
        validation_examples=[PIRATE],
    )
    body = wire.create_request_to_json(req)
    data_json = body["tuningTask"]["trainingData"]
    assert "examples" not in data_json and len(data_json["conversations"]) == 2
    back = wire.create_request_from_json(json.loads(json.dumps(body)))
    assert back.examples == [Conversation.single("1", "2"), PIRATE]
    assert back.validation_examples == [PIRATE]
    # Google's form is untouched, and both forms may come together (examples first).
    mixed = {
        "baseModel": "models/x",
        "tuningTask": {
            "trainingData": {
                "examples": {"examples": [{"textInput": "1", "output": "2"}]},
                "conversations": [OPENAI, VERTEX],
            }
        },
    }
    got = wire.create_request_from_json(mixed).examples
    assert got[0] == TuningExample("1", "2") and got[2] == PIRATE
    bad = {
        "baseModel": "models/x",
        "tuningTask": {"trainingData": {"conversations": [turns(("user", "a"))]}},
    }
    with pytest.raises(InvalidArgument, match="training_data row 1, turn 1: the conversation ends"):
        data.validate_examples(wire.create_request_from_json(bad).examples)


def test_generate_content_bodies_become_conversations():
    one, _ = wire.content_request_from_json(
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    )
    assert one == "hi"  # one user turn is a plain prompt, as before
    chat, _ = wire.content_request_from_json(
        {
            "systemInstruction": {"parts": [{"text": "You are a pirate."}]},
            "contents": [
                VERTEX["contents"][0],
                {"role": "model", "parts": [{"text": "Ahoy"}]},
                VERTEX["contents"][2],
            ],
        }
    )
    assert chat == Conversation(
        [PIRATE.turns[0], Turn(MODEL, "Ahoy"), PIRATE.turns[2]], "You are a pirate."
    )
    assert (
        wire.contents_prompt(
            **{
                "contents": wire.conversation_to_json(chat)["contents"],
                "system": wire.conversation_to_json(chat)["systemInstruction"],
            }
        )
        == chat
    )
