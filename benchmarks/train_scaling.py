"""Training scaling: how a tuning job's time and memory grow with examples and their length.

    .venv/bin/python benchmarks/train_scaling.py          # a scaled-down sweep (a few minutes)
    .venv/bin/python benchmarks/train_scaling.py --full   # 100 -> 3,000 examples, 20 -> 512 tokens

Each point is one LoRA job of the engine (``tunesmith.engine.recipe.run``, what a worker runs:
tokenise, load the packaged default base, wrap, train, save) in a fresh process, so each
starts as a worker that has not run a job before and its peak resident memory is its own.
Batch 8, 1 epoch, LoRA all-linear r 8; the engine decides bf16 and compiling as for any job.

* examples: the next-number task (see numbers_task.py; ~20 tokens an example), 100 -> 3,000;
* sequence length: 64 examples (32 scaled down) each stretched to about N tokens (a run of
  consecutive numbers to continue; the target is the next one), 20 -> 512 tokens.

Printed: the job's wall time, the time of its training steps alone, real tokens per second,
the child's peak RSS and the engine's own memory estimate (what :mod:`tunesmith.engine.memory`
checks before a run). ``--plots DIR`` (default docs/img) saves ``train_examples.png`` and
``train_seqlen.png``. Timings on a shared machine are noisy: read the trend, not a point.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from tunesmith.jobs.embedded import openmp_env

HERE = Path(__file__).resolve().parent

POINT = """
import json, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
n, length, epochs, batch = (int(a) for a in sys.argv[2:6])
started = time.perf_counter()
from numbers_task import default_base_model, make_examples
from tunesmith.engine import memory, recipe
from tunesmith.engine.prompting import PromptFormat

base_dir, template = default_base_model()
train, _ = make_examples(n, 0)
if length:
    tokenizer = recipe.load_tokenizer(base_dir)
    fmt = PromptFormat(template, tokenizer)
    stretched = []
    for i in range(n):
        first, count = 10 + 7 * i, max(1, length // 3)
        while True:
            text = " ".join(str(first + k) for k in range(count))
            ids, _ = recipe.encode(tokenizer, fmt, text, str(first + count), 10_000)
            if len(ids) >= length or count > 4 * length:
                break
            count += max(1, (length - len(ids)) // 3)
        stretched.append((text, str(first + count)))
    train = stretched
steps = []
r = recipe.Recipe(base_dir, train, Path(tempfile.mkdtemp()), epochs, batch,
                  prompt_template=template)
def on_step(report):
    steps.append((time.perf_counter(), report.tokens))
    return True
job_started = time.perf_counter()
recipe.run(r, on_step)
finished = time.perf_counter()
tokenizer = recipe.load_tokenizer(base_dir)
fmt = PromptFormat(template, tokenizer)
longest = max(len(recipe.encode(tokenizer, fmt, i, o, 1024)[0]) for i, o in train)
mean = sum(len(recipe.encode(tokenizer, fmt, i, o, 1024)[0]) for i, o in train) / len(train)
est = memory.estimate(base_dir, "lora", batch, longest, recipe.bf16_supported(), 8)
print(json.dumps({
    "job": finished - job_started,
    "steps": len(steps),
    "train": finished - steps[0][0] if len(steps) > 1 else 0.0,
    "tokens": sum(t for _, t in steps),
    "tokens_after_first": sum(t for _, t in steps[1:]),
    "mean_len": mean,
    "longest": longest,
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "estimate": est.total,
}))
"""


def point(n: int, length: int, epochs: int, batch: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", POINT, str(HERE), str(n), str(length), str(epochs), str(batch)],
        capture_output=True,
        text=True,
        check=False,
        env=openmp_env(dict(os.environ)),  # as the worker processes tunesmith starts
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(label: str, p: dict) -> str:
    # Steps after the first: the first step of a fresh worker also pays one-time costs.
    rate = p["tokens_after_first"] / p["train"] if p["train"] else float("nan")
    return (
        f"{label:>9}{p['mean_len']:9.0f}{p['steps']:7}{p['job']:8.1f}s{p['train']:8.1f}s"
        f"{rate:10.0f}{p['rss'] / 2**20:9.0f} MiB{p['estimate'] / 2**20:9.0f} MiB"
    )


HEADER = (
    f"{'':>9}{'mean tok':>9}{'steps':>7}{'job':>9}{'steps':>9}{'tokens/s':>10}"
    f"{'peak RSS':>13}{'estimate':>13}"
)


def plot(path: Path, xs, points, xlabel: str, title: str) -> None:
    from plots import scaling_plot

    rss = [p["rss"] / 2**20 for p in points]
    scaling_plot(path, xs, [p["job"] for p in points], "job wall time (s)", rss, xlabel, title)


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(HERE))
    from machine import cpu_model, describe

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="100 -> 3,000 examples, 20 -> 512")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--plots", type=Path, default=HERE.parent / "docs" / "img")
    parser.add_argument("--no-plots", action="store_true")
    ints = lambda text: [int(x) for x in text.split(",")]  # noqa: E731
    parser.add_argument("--sizes", type=ints, help="examples to sweep, comma-separated")
    parser.add_argument("--lengths", type=ints, help="tokens per example to sweep")
    parser.add_argument("--per-length", type=int, help="examples in the length sweep")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([100, 300, 1000, 3000] if args.full else [100, 300, 1000])
    lengths = args.lengths or ([20, 64, 128, 256, 512] if args.full else [20, 64, 128, 256])
    per_length = args.per_length or (64 if args.full else 32)
    machine = describe()
    print(f"CPU: {machine}; batch {args.batch_size}, {args.epochs} epoch(s), LoRA r 8")

    print(f"\nexamples (next-number task)\n{HEADER}")
    by_size = []
    for n in sizes:
        by_size.append(point(n, 0, args.epochs, args.batch_size))
        print(_row(str(n), by_size[-1]), flush=True)

    print(f"\nsequence length ({per_length} examples of about N tokens)\n{HEADER}")
    by_length = []
    for length in lengths:
        by_length.append(point(per_length, length, args.epochs, args.batch_size))
        print(_row(f"~{length}", by_length[-1]), flush=True)

    if not args.no_plots:
        shared = (
            f"batch {args.batch_size}, {args.epochs} epoch; {cpu_model()}, {os.cpu_count()} cores"
        )
        plot(args.plots / "train_examples.png", sizes, by_size, "examples", f"LoRA job vs examples\n{shared}")  # fmt: skip
        plot(args.plots / "train_seqlen.png", [p["mean_len"] for p in by_length], by_length,
             f"tokens per example ({per_length} examples)", f"LoRA job vs length\n{shared}")  # fmt: skip
        print(f"\nplots: {args.plots / 'train_examples.png'}, {args.plots / 'train_seqlen.png'}")


if __name__ == "__main__":
    main()
