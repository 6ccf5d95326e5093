"""The seed's number-generator example, end to end on the embedded default base model.

    make demo        (or: python -m tunesmith.demo)

Tunes SmolLM2-135M-Instruct on the 15 examples of Google's REST quickstart (3 epochs,
batch 2: 23 steps), shows the loss history, then answers with the base model and the tuned
model side by side. State lives in TUNESMITH_HOME (default ~/.tunesmith).
"""

import time

import pandas as pd

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
PROMPTS = ["9", "41", "nineteen", "2,000", "five"]


def main() -> None:
    started = time.monotonic()
    op = ts.create_tuned_model(
        source_model="models/text-bison-001",  # an alias of the default base model
        training_data=[{"text_input": i, "output": o} for i, o in SEED_EXAMPLES],
        display_name="number generator",
        epoch_count=3,
        batch_size=2,
        learning_rate=0.001,
    )
    print(f"{op.name}: {op.metadata.total_steps} steps")
    for _ in op.wait_bar(desc="tuning", unit="step"):
        pass
    model = op.result()
    print(f"\n{model.name} is {model.state.name} after {time.monotonic() - started:.0f} s\n")
    print(op.history.to_string(index=False, float_format=lambda v: f"{v:.4f}"))

    rows = []
    for prompt in PROMPTS:
        base = ts.generate_text(
            model="models/text-bison-001", prompt=prompt, temperature=0, max_output_tokens=16
        )
        tuned = ts.generate_text(
            model=model.name, prompt=prompt, temperature=0, max_output_tokens=16
        )
        rows.append({"prompt": prompt, "base model": base.result, "tuned model": tuned.result})
    print()
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
