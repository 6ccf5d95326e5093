"""Conversations through the service on the tiny model: a data set of conversations tunes,
keeps its validation loss, and the tuned and base models answer conversations with the
prompt rendered as in training. Bad conversations are refused before anything is stored."""

from __future__ import annotations

import pytest

from tunesmith.errors import InvalidArgument
from tunesmith.jobs.worker import Worker
from tunesmith.records.conversations import MODEL, USER, Conversation, Turn
from tunesmith.service import CreateTunedModelRequest
from tunesmith.types import GenerationConfig, TunedModelState, TuningExample

GREEDY = GenerationConfig(temperature=0, max_output_tokens=6)


def chat(name: str, answer: str) -> Conversation:
    return Conversation(
        [
            Turn(USER, f"one {name}"),
            Turn(MODEL, "two", 0),
            Turn(USER, "three"),
            Turn(MODEL, answer),
        ],
        "count",
    )


CHATS = [chat(n, a) for n, a in [("five", "six"), ("seven", "eight"), ("ten", "eleven")]]


def test_conversations_tune_and_answer(service):
    op = service.tuning.create_tuned_model(
        CreateTunedModelRequest(
            source_model="models/text-bison-001",
            examples=[*CHATS * 4, TuningExample("one", "two")],
            validation_examples=[chat("nine", "ten")],
            id="talker",
            epoch_count=8,
            batch_size=4,
            learning_rate=0.02,
        )
    )
    assert op.metadata.total_steps == 26
    assert Worker(service.settings, service.store).run_once()
    op = service.tuning.get_operation(op.name)
    assert op.done and op.error is None and op.response.state is TunedModelState.ACTIVE
    losses = [s.mean_loss for s in op.metadata.snapshots]
    assert sum(losses[-4:]) < sum(losses[:4])
    assert len(service.tuning.get_validation_losses("tunedModels/talker").losses) == 8

    asked = Conversation(CHATS[0].turns[:3], "count")
    answer = service.generation.generate("tunedModels/talker", asked, GREEDY)
    learned = {"six", "eight", "eleven"}  # the tiny model learns the answers, if not which
    assert answer.candidates[0].output.strip() in learned
    base = service.generation.generate("models/text-bison-001", asked, GREEDY)
    assert base.candidates[0].output.strip() not in learned
    # The served prompt is the trained prefix: its token count is the training ids' prefix.
    assert answer.prompt_token_count == service.generation.count_tokens("tunedModels/talker", asked)
    # A plain prompt is one user turn, rendered as before.
    assert service.generation.generate("tunedModels/talker", "one", GREEDY).candidates


@pytest.mark.parametrize(
    "turns, message",
    [
        ([Turn(USER, "a"), Turn(MODEL, "b")], "contents, turn 2: the conversation must end"),
        ([Turn(USER, "a"), Turn("system", "b"), Turn(USER, "c")], "contents, turn 2: unknown"),
    ],
)
def test_generation_refuses_conversations_out_of_order(service, turns, message):
    with pytest.raises(InvalidArgument, match=message):
        service.generation.generate("models/text-bison-001", Conversation(turns), GREEDY)


def test_bad_training_conversations_store_nothing(service):
    bad = Conversation([Turn(USER, "a"), Turn(MODEL, "b"), Turn(MODEL, "c")])
    with pytest.raises(InvalidArgument, match="training_data row 2, turn 3: two model"):
        service.tuning.create_tuned_model(
            CreateTunedModelRequest(
                source_model="models/text-bison-001", examples=[CHATS[0], bad], id="nope"
            )
        )
    assert service.tuning.list_tuned_models()[0] == []
