"""The fast engine on the real packaged base model: it learns, and the answers change."""

from __future__ import annotations

import pytest
import torch

from tunesmith.engine import base_models, models, recipe
from tunesmith.engine.batching import collate
from tunesmith.engine.prompting import PromptFormat
from tunesmith.settings import DEFAULT_BASE_MODEL

pytestmark = pytest.mark.slow

EXAMPLES = [(str(n), str(n + 1)) for n in (3, 17, 29, 40, 58, 99, 123, 250, 399, 777, 1009)] + [
    (f"{n:,}", f"{n + 1:,}") for n in (1000, 4599, 23000, 99999, 120000, 7000000)
]


def _answer(model, tokenizer, fmt: PromptFormat, text: str) -> str:
    ids = tokenizer(fmt.prompt(text), add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(input_ids=ids, max_new_tokens=10, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def test_the_loss_falls_and_generation_changes(converted_base_models, tmp_path):
    spec = base_models.resolve(DEFAULT_BASE_MODEL, DEFAULT_BASE_MODEL)
    base_dir = base_models.materialize(spec, converted_base_models)
    r = recipe.Recipe(
        base_dir=base_dir,
        examples=EXAMPLES,
        output_dir=tmp_path / "adapter",
        epoch_count=3,
        batch_size=4,
        prompt_template=spec.prompt_template,
    )
    losses: list[float] = []
    recipe.run(r, lambda rep: losses.append(rep.mean_loss) or True)
    assert len(losses) == r.total_steps == 13  # ceil(3 x 17 / 4)

    from peft import PeftModel

    tokenizer = recipe.load_tokenizer(base_dir)
    fmt = PromptFormat(spec.prompt_template, tokenizer)
    batch = collate([recipe.encode(tokenizer, fmt, i, o, 64) for i, o in EXAMPLES], 0)
    base = models.load_model(base_dir)
    loss_before = _loss(base, batch)
    before = _answer(base, tokenizer, fmt, "41")
    tuned = PeftModel.from_pretrained(base, r.output_dir)
    # One step's loss swings with its batch; the loss over all the examples must fall.
    assert _loss(tuned, batch) < loss_before / 2
    after = _answer(tuned, tokenizer, fmt, "41")
    assert after != before and len(after) < len(before)


def _loss(model, batch) -> float:
    ids, labels, mask = batch
    with torch.inference_mode():
        return models.target_loss(model.eval(), ids, mask, labels).item()
