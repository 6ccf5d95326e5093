"""A newcomer's first job: what it waits for on a fresh home, and the base model's conversion.

    .venv/bin/python benchmarks/first_job.py [--rounds 2]

Each round, in this run:

* converting the packaged base model (SmolLM2-135M-Instruct, Q4_1 GGUF) into a safetensors
  folder, by tunesmith's direct path (:mod:`tunesmith.engine.gguf_import`) and by
  transformers' own GGUF loader (the fallback, and what every first run paid before), each
  in a fresh process after the imports a worker has made anyway: wall and CPU seconds, and
  the ratio;
* the seed's job (15 examples, 3 epochs, batch 2: 23 steps) from ``create_tuned_model`` to
  ACTIVE through the embedded SDK (its worker process started by the call, as for a user):
  on a fresh home that reads the installation's shared cache of converted packaged models
  (``make setup`` fills it: what a newcomer gets), on a fresh home without that cache
  (``TUNESMITH_SHARED_BASE_MODELS`` pointed at an empty folder), which converts the base on
  its way, and on a home whose base was prepared ahead (``python -m tunesmith.jobs.prepare``);
  with the time at which the operation first said it was preparing, loading and tuning.

Timings on a shared machine are noisy: the rounds alternate, read the lowest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # benchmarks/ is the script's folder

SEED_JOB = [
    ("1", "2"), ("3", "4"), ("-3", "-2"), ("twenty two", "twenty three"),
    ("two hundred", "two hundred one"), ("ninety nine", "one hundred"), ("8", "9"),
    ("-98", "-97"), ("1,000", "1,001"), ("10,100,000", "10,100,001"),
    ("thirteen", "fourteen"), ("eighty", "eighty one"), ("one", "two"),
    ("three", "four"), ("seven", "eight"),
]  # fmt: skip

CONVERT = """
import json, sys, time
from pathlib import Path
# What a worker has imported anyway before it prepares a base model (the job needs it all).
import torch, gguf, safetensors.torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.models.llama import modeling_llama
started, cpu = time.perf_counter(), time.process_time()
from tunesmith.engine import base_models
spec = base_models.resolve("models/smollm2-135m-instruct", "models/smollm2-135m-instruct")
out, workdir = Path(sys.argv[2]), Path(sys.argv[2]).parent
if sys.argv[1] == "direct":
    from tunesmith.engine import gguf_import
    assert gguf_import.convert(base_models._gguf_path(spec, workdir), out)
else:
    base_models._convert_with_transformers(spec, out, workdir)
print(json.dumps([time.perf_counter() - started, time.process_time() - cpu]))
"""

FIRST_JOB = """
import json, os, sys, time
import tunesmith as ts
data = json.loads(sys.argv[1])
started = time.perf_counter()
op = ts.create_tuned_model("models/text-bison-001", [{"text_input": i, "output": o} for i, o in data],
                           id="first", epoch_count=3, batch_size=2)
phases = {}
while not op.done():
    name = op.metadata.phase.name if op.metadata.phase else None
    phases.setdefault(str(name), time.perf_counter() - started)
    time.sleep(0.1)
assert op.exception() is None, op.exception()
print(json.dumps([time.perf_counter() - started, op.metadata.total_steps, phases]))
"""


def _python(code: str, *args: str, env: dict | None = None) -> list:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def convert_seconds(path: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="tunesmith-convert-") as tmp:
        wall, cpu = _python(CONVERT, path, str(Path(tmp) / "out"))
    return wall, cpu


def first_job(how: str) -> tuple[float, int, dict]:
    """``how``: "shared" (a fresh home, the shared cache), "convert" (a fresh home, no shared
    cache) or "prepared" (the home's own base prepared ahead, no shared cache)."""
    home = Path(tempfile.mkdtemp(prefix="tunesmith-first-"))
    env = {"TUNESMITH_HOME": str(home), "TUNESMITH_WORKER_IDLE_SECONDS": "2"}
    if how != "shared":
        env["TUNESMITH_SHARED_BASE_MODELS"] = str(home / "no-shared-cache")
    prepared = how == "prepared"
    for var in ("TUNESMITH_DATABASE_URL", "TUNESMITH_API_ENDPOINT", "TUNESMITH_API_KEY"):
        os.environ.pop(var, None)
    try:
        if prepared:
            subprocess.run([sys.executable, "-m", "tunesmith.jobs.prepare"], env={**os.environ, **env},
                           check=True, capture_output=True)  # fmt: skip
        return tuple(_python(FIRST_JOB, json.dumps(SEED_JOB), env=env))
    finally:
        time.sleep(3)  # let the idle embedded worker leave before its home goes
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"CPU: {describe()}")
    for r in range(1, args.rounds + 1):
        direct, via_transformers = convert_seconds("direct"), convert_seconds("transformers")
        print(
            f"round {r}: convert the base  direct {direct[0]:5.1f} s ({direct[1]:.1f} CPU-s)  "
            f"transformers {via_transformers[0]:5.1f} s ({via_transformers[1]:.1f} CPU-s)  "
            f"{via_transformers[0] / direct[0]:.1f}x faster"
        )
        for how, where in (
            ("shared", "fresh home, shared cache"),
            ("convert", "fresh home, converts   "),
            ("prepared", "base prepared ahead    "),
        ):
            seconds, steps, phases = first_job(how)
            marks = "  ".join(f"{k.lower()} at {v:.1f} s" for k, v in phases.items())
            print(f"round {r}: first job, {where}  ACTIVE after {seconds:5.1f} s ({steps} steps;"
                  f" {marks})")  # fmt: skip


if __name__ == "__main__":
    main()
