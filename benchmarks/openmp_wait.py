"""How OpenMP threads wait, quiet and on a busy machine: the processes tunesmith starts.

    .venv/bin/python benchmarks/openmp_wait.py [--busy 6] [--tokens 200]

torch's CPU kernels run on OpenMP threads (libgomp in the PyPI wheels), which wait for the
next parallel region by spinning and then sleeping; the environment chooses how long, once,
when a process loads OpenMP. The worker and the generation server that tunesmith starts get
``GOMP_SPINCOUNT`` = ``tunesmith.jobs.embedded.OPENMP_SPIN_COUNT`` unless the user set a
policy. Each point here is a fresh process under one policy:

* ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` (sleep at once);
* ``tunesmith``: the bounded spin above;
* ``libgomp default``: neither variable set (libgomp spins 300,000 iterations);

measuring, in that process, the default base model's greedy decode on the PyTorch engine
(llama.cpp, the default engine, decodes on threads of its own; the second of two identical
requests of ``--tokens`` new tokens: generated tokens per second) and a short tuning
run (the seed-sized job: 16 next-number examples, 3 epochs, batch 2, through the engine:
seconds including loading the base), first on a quiet machine, then beside ``--busy``
processes that each spin a core (a machine with more runnable work than cores).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

from tunesmith.jobs.embedded import OPENMP_SPIN_COUNT  # noqa: E402

POLICIES = {
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "tunesmith": {"GOMP_SPINCOUNT": OPENMP_SPIN_COUNT},
    "libgomp default": {},
}

MEASURE = """
import json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from numbers_task import default_base_model, make_examples
from tunesmith.engine import recipe
from tunesmith.serving import ModelServer, Sampling
base, template = default_base_model()
server = ModelServer(engine="torch")
tokens = int(sys.argv[2])
for _ in range(2):
    started = time.perf_counter()
    answer = server.generate(base, template, "Write a long story about a dragon.",
                             Sampling(0.0, 1.0, 0, 1, tokens))
    decode = answer.candidates[0].token_count / (time.perf_counter() - started)
train, _ = make_examples(16, 0, seed=1)
with tempfile.TemporaryDirectory() as out:
    started = time.perf_counter()
    recipe.run(recipe.Recipe(base, train, Path(out), 3, 2, prompt_template=template))
    tuning = time.perf_counter() - started
print(json.dumps([decode, tuning]))
"""


def measure(policy: dict[str, str], tokens: int) -> tuple[float, float]:
    """(decode tokens/s, tuning seconds) in a fresh process under ``policy``."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    bench = str(Path(__file__).resolve().parent)
    out = subprocess.run([sys.executable, "-c", MEASURE, bench, str(tokens)],
                         env={**env, **policy}, capture_output=True, text=True, check=False)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    decode, tuning = json.loads(out.stdout.strip().splitlines()[-1])
    return decode, tuning


def _spin() -> None:
    while True:
        pass


def table(label: str, tokens: int) -> None:
    print(f"\n{label}")
    print(f"{'policy':>17}{'decode tokens/s':>17}{'tuning':>9}")
    results = {name: measure(policy, tokens) for name, policy in POLICIES.items()}
    passive = results["passive"]
    for name, (decode, tuning) in results.items():
        print(f"{name:>17}{decode:>11.1f} ({decode / passive[0]:.2f}x){tuning:>7.1f} s"
              f" ({passive[1] / tuning:.2f}x)")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=6, help="processes spinning beside it")
    parser.add_argument("--tokens", type=int, default=200)
    args = parser.parse_args(argv)
    os.environ.setdefault("TUNESMITH_HOME", tempfile.mkdtemp(prefix="tunesmith-omp-"))
    print(f"CPU: {describe()}; ratios against passive (higher is faster)")
    table("quiet", args.tokens)
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    try:
        time.sleep(1)
        table(f"beside {args.busy} busy processes", args.tokens)
    finally:
        for p in spinners:
            p.terminate()


if __name__ == "__main__":
    main()
