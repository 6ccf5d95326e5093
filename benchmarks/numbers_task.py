"""The next-number task shared by the benchmarks: examples, a held-out split, exact match.

An input is a number written one of three ways and the output is the next number written
the same way, in the style of the seed's number-generator examples:

    digits          "41" -> "42",  "-98" -> "-97"
    separators      "1,999" -> "2,000",  "10,100,000" -> "10,100,001"
    words           "ninety nine" -> "one hundred",  "two hundred" -> "two hundred one"

Magnitudes are drawn log-uniformly, with extra weight on numbers ending in 9s (the carries a
model has to learn). Training and held-out sets never share an input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

# The examples are the demo's own task (one generator for the demo and the benchmarks).
from tunesmith.demo import KINDS, make_examples, words  # noqa: F401


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of answers equal to the reference after trimming surrounding white space."""
    hits = sum(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True))
    return hits / max(1, len(references))


@torch.inference_mode()
def greedy_answers(
    model, tokenizer, prompt: Callable[[str], str], inputs: Sequence[str], batch: int = 32
) -> list[str]:
    """Greedy answers, batched with left padding (the prompt rule is the engine's)."""
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers: list[str] = []
    try:
        for start in range(0, len(inputs), batch):
            texts = [prompt(x) for x in inputs[start : start + batch]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(
                **enc,
                max_new_tokens=24,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new = out[:, enc["input_ids"].shape[1] :]
            answers += tokenizer.batch_decode(new, skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return answers


def evaluate(base_dir: Path, adapter_dir: Path | None, heldout, prompt_template=None) -> float:
    """Held-out exact match of the base model, or of the base with a LoRA adapter."""
    from tunesmith.engine.prompting import PromptFormat
    from tunesmith.engine.recipe import load_model, load_tokenizer

    tokenizer = load_tokenizer(base_dir)
    model = load_model(base_dir)
    fmt = PromptFormat(prompt_template, tokenizer)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
        fmt = PromptFormat.load(adapter_dir, tokenizer) or fmt
    answers = greedy_answers(model, tokenizer, fmt.prompt, [i for i, _ in heldout])
    return exact_match(answers, [o for _, o in heldout])


def default_base_model() -> tuple[Path, str | None]:
    """The packaged default base model as a safetensors folder (converted once under
    ``TUNESMITH_HOME``), and its prompt template, as a job would use them."""
    from tunesmith.engine import base_models
    from tunesmith.settings import DEFAULT_BASE_MODEL, get_settings

    spec = base_models.resolve(DEFAULT_BASE_MODEL, DEFAULT_BASE_MODEL)
    return base_models.materialize(spec, get_settings().base_models_dir), spec.prompt_template
