"""Export fixtures: a LoRA-tuned and a fully tuned tiny model, and what tunesmith's own
serving answers with them (the reference every export must match)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.engine import recipe
from tunesmith.engine.export import ExportSource

# The fixed prompt set: inputs like the tuning examples, and others it never saw.
PROMPTS = ["3", "7", "11", "one two", "ten", "hello world", "fifty", "0 1 2"]
EXAMPLES = [(str(i), str(i + 1)) for i in range(1, 13)] + [("one two", "three"), ("ten", "11")]
TEMPLATE = "{input}\n"


def tune(base_dir: Path, out: Path, method: str = "lora") -> Path:
    # A high learning rate, so the tuned tiny model visibly answers differently from its base.
    lr = 0.05 if method == "lora" else 0.01
    r = recipe.Recipe(
        base_dir=base_dir,
        examples=EXAMPLES,
        output_dir=out,
        epoch_count=4,
        batch_size=4,
        learning_rate=lr,
        method=method,
        prompt_template=TEMPLATE,
    )
    return recipe.run(r)


@pytest.fixture(scope="session")
def tuned_tiny(tmp_path_factory, tiny_model_dir) -> ExportSource:
    folder = tune(tiny_model_dir, tmp_path_factory.mktemp("tuned") / "adapter")
    return ExportSource(
        tuned_dir=folder,
        method="lora",
        base_dir=tiny_model_dir,
        name="tiny-tuned",
        title="Tiny tuned",
        base_name="tiny",
        prompt_template=TEMPLATE,
        sampling={"temperature": 0.5, "top_p": 0.9, "top_k": 20},
    )


@pytest.fixture(scope="session")
def fully_tuned_tiny(tmp_path_factory, tiny_model_dir) -> ExportSource:
    folder = tune(tiny_model_dir, tmp_path_factory.mktemp("tuned-full") / "full", "full")
    return ExportSource(
        tuned_dir=folder,
        method="full",
        base_dir=tiny_model_dir,
        name="tiny-full",
        prompt_template=TEMPLATE,
    )


def served(source: ExportSource, prompts=PROMPTS, max_tokens: int = 8) -> list[str]:
    """tunesmith's own greedy answers (its serving: the base plus the adapter per row)."""
    from tunesmith.serving import ModelServer, Sampling

    greedy = Sampling(
        temperature=0.0, top_p=1.0, top_k=0, candidate_count=1, max_output_tokens=max_tokens
    )
    server = ModelServer("8")
    adapter = source.tuned_dir if source.is_adapter else None
    base = source.base_dir if adapter else source.tuned_dir
    return [
        server.generate(base, source.prompt_template, p, greedy, adapter).candidates[0].output
        for p in prompts
    ]


def hf_greedy(model, tokenizer, prompts=PROMPTS, max_tokens: int = 8) -> list[str]:
    """Greedy answers from a transformers model, prompted through the tokenizer's chat
    template as a transformers user would."""
    import torch

    answers = []
    for p in prompts:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_tokens,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id or 0,
            )
        answers.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    return answers
