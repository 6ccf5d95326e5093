"""`make demo` shows what tuning does: on prompts it never saw, the tuned model answers the way
its examples do and the base model does not."""

from __future__ import annotations

import re

import pytest

from tunesmith import demo

pytestmark = pytest.mark.slow


def test_showcase_prompts_are_held_out():
    training_inputs = {i for i, _ in demo.training_rows()}
    assert not training_inputs & {prompt for prompt, _ in demo.SHOWCASE}
    assert set(demo.SEED_EXAMPLES) <= set(demo.training_rows())


def test_demo_tuned_model_beats_the_base_on_held_out_prompts(real_home, capsys):
    demo.main()
    out = capsys.readouterr().out
    assert re.search(r"is ACTIVE after \d+ s", out)
    prompts = [prompt for prompt, _ in demo.SHOWCASE]
    rows = [line for line in out.splitlines() if any(line.startswith(p + " ") for p in prompts)]
    assert len(rows) == len(demo.SHOWCASE), out
    marks = [re.findall("[✓✗]", row)[-2:] for row in rows]  # base's, then the tuned model's
    base_right = sum(base == "✓" for base, _ in marks)
    tuned_right = sum(tuned == "✓" for _, tuned in marks)
    assert tuned_right >= len(rows) - 1, out
    assert base_right == 0, out
    assert f"answered {tuned_right} of {len(rows)}" in out
