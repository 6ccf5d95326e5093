"""llama.cpp decoding while a tuning run trains in another process, as in a `tunesmith serve`
whose worker is tuning: decode tokens/s and the trainer's steps/s meanwhile, with tunesmith's
thread policy (one thread while a run trains, :func:`tunesmith.serving.llama.decode_threads`)
against llama.cpp on every core (what it had before that policy), and the ratio.

    .venv/bin/python benchmarks/serving_beside_tuning.py

One greedy stream over a random rank-8 adapter on the packaged base (F16 GGUF); the trainer is
the engine's LoRA run on the next-number task (400 examples, batch 8, eager) in a child
process under the workers' OpenMP policy. The trainer's rate alone is read before and after
the decode windows; the two policies alternate, three windows each. Every core beside a
trainer can decode below one token a second, so a run takes minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def train(base: Path, counter: Path) -> None:
    """The child: tune, writing the steps done so far to ``counter``."""
    from tunesmith.jobs.embedded import openmp_env

    openmp_env(os.environ)
    from numbers_task import make_examples

    from tunesmith.engine import recipe

    examples, _ = make_examples(400, 10, seed=0)
    done = [0]

    def on_step(_report) -> bool:
        done[0] += 1
        counter.write_text(str(done[0]))
        return True

    out = Path(tempfile.mkdtemp()) / "out"
    r = recipe.Recipe(base, examples, out, epoch_count=3, batch_size=8, compile=False)
    recipe.run(r, on_step)


def main() -> None:
    import numpy as np
    from machine import describe

    from serving import base_dir, make_adapters
    from tunesmith.engine import cores
    from tunesmith.engine.export.gguf_file import folder_config
    from tunesmith.engine.tokenizer import load_tokenizer
    from tunesmith.serving import llama as engine

    print(f"CPU: {describe()}")
    base, tmp = base_dir(), Path(tempfile.mkdtemp())
    config, tokenizer = folder_config(base), load_tokenizer(base)
    gguf = engine.base_gguf(base, config, tokenizer, "float16", tmp / "serving")
    adapter = engine.adapter_gguf(make_adapters(base, tmp, 1)[0], config, tmp / "serving")
    prompt = tokenizer("What number comes after 100? Answer with the number only.")["input_ids"]
    model = engine.LlamaModel(gguf, 8)

    policies = {"tunesmith": engine.decode_threads, "every core": cores.usable}

    def decode_rate(policy: str, tokens: int = 96) -> float:
        engine.decode_threads = policies[policy]  # what LlamaModel.decode follows
        model.use(adapter)
        model.clear()
        time.sleep(engine.THREADS_CHECK_SECONDS)  # the next decode asks again
        logits = model.decode([((0,), prompt)])
        start = time.perf_counter()
        for _ in range(tokens):
            logits = model.decode([((0,), [int(np.argmax(logits[0]))])])
        return tokens / (time.perf_counter() - start)

    alone = max(decode_rate("tunesmith") for _ in range(2))
    print(f"decode alone: {alone:5.1f} tokens/s on {model.threads} thread(s)")

    counter = tmp / "steps"
    child = subprocess.Popen(
        [sys.executable, __file__, "--train", str(base), str(counter)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def steps() -> int:
        try:
            return int(counter.read_text() or 0)
        except (OSError, ValueError):
            return 0

    def trainer_steps(window) -> tuple[int, float]:
        """The trainer's steps and the seconds while ``window`` runs."""
        s0, t0 = steps(), time.time()
        window()
        return steps() - s0, time.time() - t0

    def trainer_rate(window) -> float:
        done, seconds = trainer_steps(window)
        return done / seconds

    try:
        while steps() < 3:  # past loading the base and the first steps
            time.sleep(0.5)
        print(f"trainer alone: {trainer_rate(lambda: time.sleep(15)):.3f} steps/s")
        rates: dict[str, list[float]] = {p: [] for p in policies}
        trainer: dict[str, list[tuple[int, float]]] = {p: [] for p in policies}
        threads: dict[str, int] = {}
        for _ in range(3):
            for policy in policies:

                def window(p: str = policy) -> None:
                    rates[p].append(decode_rate(p))
                    threads[p] = model.threads

                trainer[policy].append(trainer_steps(window))
        mean = {p: sum(r) / len(r) for p, r in rates.items()}
        for policy in policies:
            print(
                f"beside tuning, {policy} ({threads[policy]} thread(s)): decode "
                f"{mean[policy]:5.1f} tokens/s, trainer "
                f"{sum(n for n, _ in trainer[policy]) / sum(t for _, t in trainer[policy]):.3f} "
                "steps/s"
            )
        ratio = mean["tunesmith"] / mean["every core"]
        print(f"decode beside tuning, tunesmith / every core: {ratio:.2f}x")
        print(f"trainer alone: {trainer_rate(lambda: time.sleep(15)):.3f} steps/s")
    finally:
        child.kill()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--train":
        train(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
