"""The number generator of Google's tuning quickstart, end to end on the default base model.

    make demo        (or: python -m tunesmith.demo)

The quickstart's 15 examples alone are too few for a 135M-parameter model to learn the task,
so the demo adds about 150 more of the same kind (the next number, in digits, with thousands
separators or in words; :func:`make_examples`), tunes 2 epochs at batch 8 (41 steps), and then
answers prompts that are in none of the training rows with the base model and the tuned one
side by side. The benchmarks draw their examples from the same generator. State lives in
TUNESMITH_HOME (default ~/.tunesmith).
"""

from __future__ import annotations

import random
import time

import tunesmith as ts

# The 15 examples of Google's REST tuning quickstart (../shared/seeds/002_*).
SEED_EXAMPLES = [
    ("1", "2"),
    ("3", "4"),
    ("-3", "-2"),
    ("twenty two", "twenty three"),
    ("two hundred", "two hundred one"),
    ("ninety nine", "one hundred"),
    ("8", "9"),
    ("-98", "-97"),
    ("1,000", "1,001"),
    ("10,100,000", "10,100,001"),
    ("thirteen", "fourteen"),
    ("eighty", "eighty one"),
    ("one", "two"),
    ("three", "four"),
    ("seven", "eight"),
]
# Held out: never a training input (the generated rows that would be are dropped).
SHOWCASE = [("41", "42"), ("3,689", "3,690"), ("799", "800"), ("9,215", "9,216"),
            ("fifty three", "fifty four")]  # fmt: skip
GENERATED = 150
EPOCHS, BATCH_SIZE = 2, 8


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


def training_rows() -> list[tuple[str, str]]:
    """The quickstart's examples and generated ones, none of them a showcase prompt."""
    held_out = {i for i, _ in SHOWCASE}
    generated, _ = make_examples(GENERATED, 0, seed=1)
    return SEED_EXAMPLES + [(i, o) for i, o in generated if i not in held_out]


def _short(text: str, width: int = 28) -> str:
    text = " ".join(text.split()) or "(empty answer)"
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> None:
    started = time.monotonic()
    rows = training_rows()
    op = ts.create_tuned_model(
        source_model="models/text-bison-001",  # an alias of the default base model
        training_data=[{"text_input": i, "output": o} for i, o in rows],
        display_name="number generator",
        epoch_count=EPOCHS,
        batch_size=BATCH_SIZE,
    )
    print(f"{op.name}: {len(rows)} examples, {op.metadata.total_steps} steps")
    for _ in op.wait_bar(desc="tuning", unit="step"):
        pass
    model = op.result()
    print(f"\n{model.name} is {model.state.name} after {time.monotonic() - started:.0f} s\n")
    history = op.history
    print(
        f"loss {history['mean_loss'].iloc[0]:.3f} at step 1, "
        f"{history['mean_loss'].iloc[-1]:.3f} at step {len(history)}\n"
    )

    print("Prompts the model never saw in training:\n")
    print(f"{'prompt':<13} {'expected':<10} {'base model':<28}   {'tuned model':<28}")
    right = 0
    for prompt, expected in SHOWCASE:
        answers = [
            (
                ts.generate_text(
                    model=name, prompt=prompt, temperature=0, max_output_tokens=16
                ).result
                or ""
            ).strip()
            for name in ("models/text-bison-001", model.name)
        ]
        marks = ["✓" if a == expected else "✗" for a in answers]
        right += answers[1] == expected
        print(
            f"{prompt:<13} {expected:<10} {_short(answers[0]):<28} {marks[0]} "
            f"{_short(answers[1]):<28} {marks[1]}"
        )
    print(f"\nThe tuned model answered {right} of {len(SHOWCASE)} held-out prompts exactly.")


if __name__ == "__main__":
    main()
