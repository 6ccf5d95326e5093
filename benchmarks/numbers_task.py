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

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

KINDS = ("digits", "separators", "words")

_ONES = "zero one two three four five six seven eight nine".split()
_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def words(n: int) -> str:
    """English words without hyphens or 'and', as in the seed ('two hundred one')."""
    if n < 0:
        return "minus " + words(-n)
    if n < 10:
        return _ONES[n]
    if n < 20:
        return _TEENS[n - 10]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    for size, name in (
        (10**9, "billion"),
        (10**6, "million"),
        (1000, "thousand"),
        (100, "hundred"),
    ):
        if n >= size:
            head, rest = divmod(n, size)
            return f"{words(head)} {name}" + ("" if rest == 0 else " " + words(rest))
    raise AssertionError(n)


def _write(n: int, kind: str) -> str:
    if kind == "digits":
        return str(n)
    if kind == "separators":
        return f"{n:,}"
    return words(n)


def _draw(rng: random.Random, kind: str) -> int:
    lo, hi = {"digits": (1, 5), "separators": (4, 8), "words": (1, 4)}[kind]
    width = rng.randint(lo, hi)  # number of digits, uniform: magnitudes log-uniform
    n = rng.randrange(0 if width == 1 else 10 ** (width - 1), 10**width)
    if rng.random() < 0.25:  # end in 9s so that the answer carries
        nines = rng.randint(1, max(1, len(str(n)) - 1))
        n = (n // 10**nines) * 10**nines + 10**nines - 1
    if kind == "digits" and rng.random() < 0.15:
        n = -n
    return n


def make_examples(n_train: int, n_heldout: int, seed: int = 0):
    """``(train, heldout)`` lists of ``(text_input, output)``, disjoint, kinds balanced."""
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[tuple[str, str]] = []
    while len(rows) < n_train + n_heldout:
        kind = KINDS[len(rows) % len(KINDS)]
        n = _draw(rng, kind)
        text = _write(n, kind)
        if text in seen:
            continue
        seen.add(text)
        rows.append((text, _write(n + 1, kind)))
    rng.shuffle(rows)
    return rows[:n_train], rows[n_train:]


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
