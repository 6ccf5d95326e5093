"""Conversations become tokens by one rule (engine/prompting.py), checked token by token: the
loss covers exactly each learned model turn's text plus its end-of-turn token, and the prompt
generation sends is the prefix training saw."""

from __future__ import annotations

import pytest

from tunesmith.engine.export.templates import chat_template
from tunesmith.engine.prompting import IGNORE, PromptFormat
from tunesmith.engine.recipe import load_tokenizer
from tunesmith.records.conversations import MODEL, USER, Conversation, Turn

CHAT = Conversation(
    [
        Turn(USER, "My name is Ada. What is 2 plus 2?"),
        Turn(MODEL, "Four, Ada."),
        Turn(USER, "And what is my name?"),
        Turn(MODEL, "Your name is Ada."),
    ],
    "You are a terse pirate.",
)


def learned_runs(ids, labels):
    """The target tokens as runs of consecutive positions: [[ids], ...]."""
    runs, current = [], []
    for i, lab in zip(ids, labels, strict=True):
        if lab == IGNORE:
            if current:
                runs.append(current)
            current = []
        else:
            assert lab == i
            current.append(i)
    if current:
        runs.append(current)
    return runs


@pytest.fixture(scope="module")
def smollm2_tokenizer(converted_base_models):
    from tunesmith.engine import base_models
    from tunesmith.settings import DEFAULT_BASE_MODEL

    spec = base_models.resolve(DEFAULT_BASE_MODEL, DEFAULT_BASE_MODEL)
    return load_tokenizer(base_models.materialize(spec, converted_base_models)), spec


def test_smollm2_masks_cover_each_answer_and_its_end_of_turn(smollm2_tokenizer):
    tok, spec = smollm2_tokenizer
    fmt = PromptFormat(spec.prompt_template, tok)
    ids, labels = fmt.encode(CHAT, 4096)
    # The whole text is the chat template's, system instruction included.
    rendered = tok.apply_chat_template(CHAT.messages(), tokenize=False)
    assert tok.decode(ids) == rendered.removesuffix("\n")
    runs = learned_runs(ids, labels)
    assert [tok.decode(r) for r in runs] == ["Four, Ada.<|im_end|>", "Your name is Ada.<|im_end|>"]
    for r, answer in zip(runs, ["Four, Ada.", "Your name is Ada."], strict=True):
        assert r == tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


def test_smollm2_weights_and_last_turn_only(smollm2_tokenizer):
    tok, spec = smollm2_tokenizer
    fmt = PromptFormat(spec.prompt_template, tok)
    for conv in (
        CHAT.last_turn_only(),
        Conversation([CHAT.turns[0], Turn(MODEL, "Four, Ada.", 0), *CHAT.turns[2:]], "x"),
    ):
        ids, labels = fmt.encode(conv, 4096)
        assert [tok.decode(r) for r in learned_runs(ids, labels)] == ["Your name is Ada.<|im_end|>"]
    # Weights never move token boundaries: the ids are the same with or without them.
    assert fmt.encode(CHAT.last_turn_only(), 4096)[0] == fmt.encode(CHAT, 4096)[0]


def test_smollm2_served_prompt_is_the_trained_prefix(smollm2_tokenizer):
    tok, spec = smollm2_tokenizer
    fmt = PromptFormat(spec.prompt_template, tok)
    ids, labels = fmt.encode(CHAT, 4096)
    asked = Conversation(CHAT.turns[:3], CHAT.system_instruction)
    prompt = fmt.prompt_ids(asked)
    last_answer = len(ids) - len(learned_runs(ids, labels)[-1])
    assert prompt == ids[:last_answer]
    assert tok.decode(prompt).endswith("<|im_start|>assistant\n")


def test_smollm2_single_turn_is_the_old_rule(smollm2_tokenizer):
    tok, spec = smollm2_tokenizer
    fmt = PromptFormat(spec.prompt_template, tok)
    ids, labels = fmt.encode(Conversation.single("1 2 3", "4"), 4096)
    assert (
        tok.decode(ids) == "<|im_start|>user\n1 2 3<|im_end|>\n<|im_start|>assistant\n4<|im_end|>"
    )
    assert [tok.decode(r) for r in learned_runs(ids, labels)] == ["4<|im_end|>"]
    assert tok.decode(fmt.prompt_ids(Conversation.ask("1 2 3"))) == fmt.prompt("1 2 3")


def test_template_less_base_uses_the_plain_format(tiny_model_dir):
    tok = load_tokenizer(tiny_model_dir)
    assert not getattr(tok, "chat_template", None)
    fmt = PromptFormat(None, tok)
    ids, labels = fmt.encode(CHAT, 4096)
    assert tok.decode(ids) == (
        "You are a terse pirate.\n\n"
        "My name is Ada. What is 2 plus 2?\n"
        "Four, Ada.<eos>"
        "And what is my name?\n"
        "Your name is Ada.<eos>"
    )
    runs = learned_runs(ids, labels)
    assert [tok.decode(r) for r in runs] == ["Four, Ada.<eos>", "Your name is Ada.<eos>"]
    assert runs[1] == tok("Your name is Ada.", add_special_tokens=False)["input_ids"] + [
        tok.eos_token_id
    ]
    prompt = fmt.prompt_ids(Conversation(CHAT.turns[:3], CHAT.system_instruction))
    assert prompt == ids[: len(ids) - len(runs[-1])]
    single_ids, single_labels = fmt.encode(Conversation.single("one two", "three"), 4096)
    assert tok.decode(single_ids) == "one two\nthree<eos>"
    assert [tok.decode(r) for r in learned_runs(single_ids, single_labels)] == ["three<eos>"]


def test_too_long_keeps_the_end(tiny_model_dir):
    tok = load_tokenizer(tiny_model_dir)
    fmt = PromptFormat(None, tok)
    ids, labels = fmt.encode(CHAT, 4096)
    short_ids, short_labels = fmt.encode(CHAT, 12)
    assert short_ids == ids[-12:] and short_labels == labels[-12:]


def rendered(fmt: PromptFormat, conv: Conversation) -> str:
    return "".join(text for text, _turn in fmt.segments(conv))


@pytest.mark.parametrize("base", ["smollm2", "template-less"])
def test_exports_render_conversations_as_training_did(base, smollm2_tokenizer, tiny_model_dir):
    """An export's chat template (for transformers, llama.cpp) gives the served prompt of
    every conversation shape exactly as tunesmith renders it."""
    if base == "smollm2":
        tok, spec = smollm2_tokenizer
        template = spec.prompt_template
    else:
        tok, template = load_tokenizer(tiny_model_dir), None
    fmt = PromptFormat(template, tok)
    exported = chat_template(fmt.template, tok)
    asks = [
        Conversation.ask("1 2 3"),
        Conversation([Turn(USER, "hi")], "You are a terse pirate."),
        Conversation(CHAT.turns[:3], CHAT.system_instruction),
        Conversation(CHAT.turns[:3]),
    ]
    for conv in asks:
        got = tok.apply_chat_template(
            conv.messages(), chat_template=exported, tokenize=False, add_generation_prompt=True
        )
        assert got == rendered(fmt, conv)
    single = Conversation.single("1 2 3", "4")
    got = tok.apply_chat_template(single.messages(), chat_template=exported, tokenize=False)
    assert got == rendered(fmt, single)
