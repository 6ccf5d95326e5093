"""Decoding while a tuning run trains in another process, as in a `tunesmith serve` whose
worker is tuning: decode tokens/s and the trainer's steps/s meanwhile, with tunesmith's thread
policy (one thread while a run trains, :mod:`tunesmith.serving.threads`) against decoding on
every core (what both engines did before that policy), and the ratio.

    .venv/bin/python benchmarks/serving_beside_tuning.py [--engine llama.cpp|torch]

One greedy stream over a random rank-8 adapter on the packaged base: llama.cpp on its F16 GGUF
(the default engine), or the PyTorch engine through the generation server; the trainer is
the engine's LoRA run on the next-number task (400 examples, batch 8, eager) in a child
process under the workers' OpenMP policy. The trainer's rate alone is read before and after
the decode windows; the two policies alternate, three windows each. Every core beside a
trainer can decode below one token a second, so a run takes minutes.
"""

from __future__ import annotations

import argparse
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


PROMPT = "What number comes after 100? Answer with the number only."


def llama_decoder(base: Path, adapter: Path, tmp: Path):
    """``decode(tokens) -> tokens/s`` on llama.cpp (decoding steps only), and its threads."""
    import numpy as np

    from tunesmith.engine.export.gguf_file import folder_config
    from tunesmith.engine.tokenizer import load_tokenizer
    from tunesmith.serving import llama

    config, tokenizer = folder_config(base), load_tokenizer(base)
    gguf = llama.base_gguf(base, config, tokenizer, "float16", tmp / "serving")
    adapter_file = llama.adapter_gguf(adapter, config, tmp / "serving")
    prompt = tokenizer(PROMPT)["input_ids"]
    model = llama.LlamaModel(gguf, 8)

    def decode(tokens: int) -> float:
        model.use(adapter_file)
        model.clear()
        logits = model.decode([((0,), prompt)])
        start = time.perf_counter()
        for _ in range(tokens):
            logits = model.decode([((0,), [int(np.argmax(logits[0]))])])
        return tokens / (time.perf_counter() - start)

    return decode, lambda: model.threads


def torch_decoder(base: Path, adapter: Path):
    """``decode(tokens) -> tokens/s`` through a generation server on the PyTorch engine (the
    whole answer: a short prompt, then its tokens), and its threads (torch's count is the
    decoding thread's own, so read there)."""
    import torch

    from tunesmith.serving import ModelServer, Sampling, pytorch

    server = ModelServer("8", engine="torch")
    seen = [0]
    forward = pytorch._forward

    def counted(*args, **kwargs):
        out = forward(*args, **kwargs)
        seen[0] = torch.get_num_threads()
        return out

    pytorch._forward = counted

    def decode(tokens: int) -> float:
        greedy = Sampling(max_output_tokens=tokens, temperature=0.0, top_p=1.0, top_k=0,
                          candidate_count=1)  # fmt: skip
        start = time.perf_counter()
        answer = server.generate(base, None, PROMPT, greedy, adapter)
        return answer.candidates[0].token_count / (time.perf_counter() - start)

    return decode, lambda: seen[0]


def main(engine: str) -> None:
    from machine import describe

    from serving import base_dir, make_adapters
    from tunesmith.engine import cores
    from tunesmith.serving import threads as policy_module

    print(f"CPU: {describe()}; engine {engine}")
    base, tmp = base_dir(), Path(tempfile.mkdtemp())
    adapter = make_adapters(base, tmp, 1)[0]
    if engine == "llama.cpp":
        decode, decoding_threads = llama_decoder(base, adapter, tmp)
    else:
        decode, decoding_threads = torch_decoder(base, adapter)

    policies = {"tunesmith": policy_module.decode_threads, "every core": cores.usable}

    def decode_rate(policy: str, tokens: int = 96) -> float:
        policy_module.decode_threads = policies[policy]  # what each engine's Follower asks
        time.sleep(policy_module.CHECK_SECONDS)  # the next decode asks again
        return decode(tokens)

    alone = max(decode_rate("tunesmith") for _ in range(2))
    print(f"decode alone: {alone:5.1f} tokens/s on {decoding_threads()} thread(s)")

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
                    threads[p] = decoding_threads()

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
        parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        parser.add_argument("--engine", choices=["llama.cpp", "torch"], default="llama.cpp")
        main(parser.parse_args().engine)
