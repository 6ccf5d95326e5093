"""Training steps under glibc's memory allocator and under the one tunesmith's workers use.

    .venv/bin/python benchmarks/allocator.py [--examples 200] [--epochs 3] [--rounds 2]

The tuning workers tunesmith starts preload jemalloc where the system has it
(``tunesmith.jobs.embedded.worker_env``). Each point here is a fresh process running one LoRA
job through the engine (next-number examples, batch 8, the default base and its prompt
template, the layers compiled as such a job compiles them), under ``LD_PRELOAD=`` (glibc) or
the worker's environment, alternating ``--rounds`` times: seconds for the whole run, and the
mean step after the first (the first one loads and compiles).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

from tunesmith.jobs.embedded import worker_env  # noqa: E402

MEASURE = """
import json, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from numbers_task import default_base_model, make_examples
from tunesmith.engine import recipe
base, template = default_base_model()
train, _ = make_examples(int(sys.argv[2]), 0)
ends = []
with tempfile.TemporaryDirectory() as out:
    started = time.perf_counter()
    job = recipe.Recipe(base, train, Path(out), int(sys.argv[3]), 8, prompt_template=template)
    recipe.run(job, lambda _report: ends.append(time.perf_counter()) or True)
    total = time.perf_counter() - started
maps = Path("/proc/self/maps").read_text()
step = (ends[-1] - ends[0]) / max(1, len(ends) - 1)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
print(json.dumps([total, step, peak, "jemalloc" in maps]))
"""


def measure(env: dict[str, str], examples: int, epochs: int) -> tuple[float, float, float, bool]:
    """(run seconds, mean step seconds, peak RSS MiB, whether jemalloc was loaded) in a fresh
    process."""
    bench = str(Path(__file__).resolve().parent)
    out = subprocess.run([sys.executable, "-c", MEASURE, bench, str(examples), str(epochs)],
                         env=env, capture_output=True, text=True, check=False)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    total, step, peak, jemalloc = json.loads(out.stdout.strip().splitlines()[-1])
    return total, step, peak, jemalloc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    plain = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    setups = {"glibc": {**plain, "LD_PRELOAD": ""}, "worker": worker_env(dict(plain))}
    print(f"CPU: {describe()}")
    print(f"{args.examples} examples x {args.epochs} epochs, batch 8; "
          f"worker preload: {setups['worker'].get('LD_PRELOAD') or 'none (glibc)'}")  # fmt: skip
    results: dict[str, list[tuple[float, float, float, bool]]] = {name: [] for name in setups}
    for _ in range(args.rounds):
        for name, env in setups.items():
            results[name].append(measure(env, args.examples, args.epochs))
    print(f"\n{'allocator':>10}{'run':>9}{'step':>9}{'peak RSS':>13}  jemalloc loaded")
    for name, runs in results.items():
        for total, step, peak, jemalloc in runs:
            print(f"{name:>10}{total:8.1f}s{step:8.3f}s{peak:9.0f} MiB  {jemalloc}")
    mean = {n: [sum(r[i] for r in runs) / len(runs) for i in (0, 1)] for n, runs in results.items()}
    print(f"\nworker / glibc: run {mean['glibc'][0] / mean['worker'][0]:.2f}x faster, "
          f"steps {mean['glibc'][1] / mean['worker'][1]:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
