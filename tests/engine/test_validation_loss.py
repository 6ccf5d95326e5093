"""Validation data in the engine: scored once per epoch, without touching the training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunesmith.engine import checkpoint, models, recipe
from tunesmith.engine.batching import IGNORE, collate
from tunesmith.engine.prompting import PromptFormat

EXAMPLES = [(str(i), str(i + 1)) for i in range(1, 13)] + [("one two", "three"), ("ten", "11")]
HELD_OUT = [("20", "21"), ("30", "31"), ("one", "two"), ("seven eight", "nine"), ("99", "100")]
# 14 examples, batch 4, 3 epochs: 11 steps; the epochs end at steps 4, 7 and 11.
EPOCH_ENDS = {4: 1, 7: 2, 11: 3}


def _recipe(tiny_model_dir: Path, out: Path, **kw) -> recipe.Recipe:
    return recipe.Recipe(
        base_dir=tiny_model_dir,
        examples=EXAMPLES,
        output_dir=out,
        epoch_count=3,
        batch_size=4,
        mixed_precision="no",
        **kw,
    )


def _reports(r: recipe.Recipe, on_step=lambda rep: True) -> list[recipe.StepReport]:
    seen: list[recipe.StepReport] = []
    try:
        recipe.run(r, lambda rep: seen.append(rep) or on_step(rep))
    except recipe.Stopped:
        pass
    return seen


def _scored(reports) -> dict[int, tuple[int, float]]:
    return {r.step: (r.epoch, r.validation_loss) for r in reports if r.validation_loss is not None}


def test_each_epoch_end_is_scored_once_and_training_is_unchanged(tiny_model_dir, tmp_path):
    models.clear_cache()
    plain = _reports(_recipe(tiny_model_dir, tmp_path / "plain"))
    scored = _reports(_recipe(tiny_model_dir, tmp_path / "held", validation_examples=HELD_OUT))
    assert [r.validation_loss for r in plain] == [None] * 11
    assert {step: epoch for step, (epoch, _) in _scored(scored).items()} == EPOCH_ENDS
    assert all(loss > 0 for _, loss in _scored(scored).values())
    # Scoring the held-out set changes nothing about the run itself.
    assert [r.mean_loss for r in scored] == [r.mean_loss for r in plain]


def test_the_last_score_is_the_tuned_models_loss_on_the_held_out_set(tiny_model_dir, tmp_path):
    from peft import PeftModel

    models.clear_cache()
    r = _recipe(tiny_model_dir, tmp_path / "held", validation_examples=HELD_OUT)
    last = _scored(_reports(r))[11][1]
    tok = recipe.load_tokenizer(tiny_model_dir)
    fmt = PromptFormat(r.prompt_template, tok)
    rows = [recipe.encode(tok, fmt, i, o, r.max_seq_len) for i, o in HELD_OUT]
    tuned = PeftModel.from_pretrained(models.load_model(tiny_model_dir), r.output_dir).eval()
    total = count = 0
    with torch.no_grad():
        for row in rows:  # one at a time: the score must not depend on how rows are batched
            ids, labels, mask = collate([row], tok.pad_token_id)
            targets = int((labels[:, 1:] != IGNORE).sum())
            total += tuned(input_ids=ids, attention_mask=mask, labels=labels).loss.item() * targets
            count += targets
    assert last == pytest.approx(total / count, rel=1e-4)


def test_a_resumed_run_scores_the_epochs_after_its_checkpoint(tiny_model_dir, tmp_path):
    models.clear_cache()
    straight = _scored(
        _reports(_recipe(tiny_model_dir, tmp_path / "straight", validation_examples=HELD_OUT))
    )
    ckpt = tmp_path / "ckpt"
    resumable = _recipe(
        tiny_model_dir, tmp_path / "resumed", validation_examples=HELD_OUT, checkpoint_dir=ckpt
    )
    # Paused right after the step that ended epoch 1, the worst place to lose or repeat it.
    first = _reports(resumable, lambda rep: checkpoint.PAUSE if rep.step == 4 else True)
    assert checkpoint.latest_step(ckpt) == 4
    second = _reports(resumable)
    assert [r.step for r in second] == list(range(5, 12))
    assert sorted(_scored(first)) == [4] and sorted(_scored(second)) == [7, 11]
    resumed = {**_scored(first), **_scored(second)}
    assert resumed.keys() == straight.keys()
    for step, (epoch, loss) in straight.items():
        assert resumed[step][0] == epoch
        assert resumed[step][1] == pytest.approx(loss, abs=1e-5)
