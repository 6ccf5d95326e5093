"""The engine's two precisions on this machine: which one ``auto`` picks, and whether it is the
faster one.

    .venv/bin/python benchmarks/precision.py [--examples 200] [--epochs 1] [--rounds 2]

One LoRA job through the engine (next-number examples, batch 8, the default base and its
prompt template, eager layers) in bf16 autocast over a bf16 frozen base and in float32,
alternating ``--rounds`` times in this process: seconds for the whole run (loading the base,
tuning, saving) and the final loss. Before them, square matmuls of each dtype, the arithmetic
that decides it. ``auto`` (``tunesmith.engine.recipe.bf16_supported``) trains in bf16 only
where the CPU has bf16 instructions: oneDNN runs bf16 on any AVX-512 CPU, emulating them
where they are missing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tunesmith.jobs.embedded import openmp_env  # imports no torch

openmp_env(os.environ)  # before torch loads OpenMP: the worker's policy

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402
from numbers_task import default_base_model, make_examples  # noqa: E402
from train_speed import _final, matmul_peak  # noqa: E402

from tunesmith.engine import models, recipe  # noqa: E402

PRECISIONS = {"bf16": "bf16", "float32": "no"}  # name -> Recipe.mixed_precision


def run_once(base_dir: Path, template, train, epochs: int, precision: str) -> tuple[float, float]:
    losses: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        job = recipe.Recipe(
            base_dir=base_dir,
            examples=train,
            output_dir=Path(out),
            epoch_count=epochs,
            batch_size=8,
            prompt_template=template,
            compile=False,
            mixed_precision=precision,
        )
        started = time.perf_counter()
        recipe.run(job, lambda r: losses.append(r.mean_loss) or True)
        secs = time.perf_counter() - started
    models.clear_cache()  # each run loads its base, in its own dtype
    return secs, _final(losses)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    base_dir, template = default_base_model()
    train, _ = make_examples(args.examples, 0)
    print(f"CPU: {describe()}")
    # 1024^3: a bf16 matmul without bf16 instructions or AVX-512 takes seconds at 2048.
    rates = {name: matmul_peak(dtype, 1024, 2.0) for name, dtype in
             (("float32", torch.float32), ("bf16", torch.bfloat16))}  # fmt: skip
    print("matmul 1024^3: " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in rates.items()))
    print(f"auto trains in: {'bf16' if recipe.bf16_supported() else 'float32'}")
    print(f"\n{args.examples} examples x {args.epochs} epochs, batch 8, eager layers")
    seconds: dict[str, list[float]] = {name: [] for name in PRECISIONS}
    for round_ in range(args.rounds):
        for name, precision in PRECISIONS.items():
            secs, loss = run_once(base_dir, template, train, args.epochs, precision)
            seconds[name].append(secs)
            print(
                f"round {round_ + 1}  {name:>8}  {secs:6.1f} s  final loss {loss:.4f}", flush=True
            )
    bf16, fp32 = (statistics.median(seconds[name]) for name in PRECISIONS)
    print(f"\nmedian: bf16 {bf16:.1f} s, float32 {fp32:.1f} s: float32 runs {bf16 / fp32:.2f}x "
          "as fast as bf16")  # fmt: skip


if __name__ == "__main__":
    main()
