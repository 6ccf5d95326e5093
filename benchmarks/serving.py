"""Serving many tuned models from one base: memory, throughput and cold/warm latency.

    .venv/bin/python benchmarks/serving.py [--adapters 50] [--requests 32] [--tokens 32]

Uses the packaged SmolLM2-135M-Instruct (converted once under .test-cache/, as the slow tests
do). The tuned models are LoRA adapters shaped like tunesmith's default (rank 8, alpha 16, all
linear layers) with randomly initialised weights, saved with peft: a tuning run would only
change their numbers, not their size or the serving path. Every ratio compares runs made in
this same invocation, because the machine is shared and absolute timings drift.

* memory: RSS of a fresh process serving 1 tuned model, then 50 (one request each);
* throughput: 32 concurrent greedy requests spread over 8 tuned models, through tunesmith's
  batching server, against (a) loading the tuned model with transformers + peft for each
  request in turn, as a server without adapter sharing would, and (b) a stricter baseline that
  keeps the base loaded and only loads the adapter with peft per request;
* latency: one request to a tuned model not yet in memory (cold: read from its safetensors
  file) against the same request once it is cached (warm);
* CPU share with tuning: the same 32 requests while a tuning run trains in the same process
  (as ``tunesmith serve`` runs jobs in a worker thread), against each of them alone;
* single stream against llama.cpp: one greedy request of 128 new tokens on the base model with
  its chat template, tunesmith's serving against ``llama-cpp-python`` (installed by
  ``make llama-cpp``) on an F16 GGUF of the same weights written by tunesmith's exporter, each
  in a fresh process: decode tokens/s (prefill timed apart) and RSS after answering; then
  the RSS of a real ``tunesmith serve`` after the same answer (``--single-stream`` runs only
  this).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tunesmith.serving import DEFAULT_ADAPTER_CACHE

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ALL_RESIDENT = "64,4GiB"  # for comparison: no byte bound in practice, every adapter stays
TEMPLATE = None  # the model's own chat template, as tunesmith serves it
PROMPTS = [f"What number comes after {n}? Answer with the number only." for n in range(97, 140)]


def base_dir() -> Path:
    from tunesmith.engine import base_models
    from tunesmith.settings import DEFAULT_BASE_MODEL

    spec = base_models.resolve(DEFAULT_BASE_MODEL, DEFAULT_BASE_MODEL)
    return base_models.materialize(spec, REPO / ".test-cache" / "base-models")


def make_adapters(base: Path, folder: Path, n: int) -> list[Path]:
    """``n`` random rank-8 all-linear LoRA adapters, saved as tunesmith saves a tuned one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    out = []
    for i in range(n):
        torch.manual_seed(i)
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.data.normal_(0, 0.02)
        peft_model.save_pretrained(folder / f"tuned-{i:02d}")
        out.append(folder / f"tuned-{i:02d}")
    return out


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def greedy(tokens: int):
    from tunesmith.serving import Sampling

    return Sampling(0.0, 1.0, 0, 1, tokens)


# -- memory (in a fresh process, so nothing else is counted) --------------------------------


def memory_child(base: Path, adapters: list[Path], cache: str) -> dict:
    import gc

    from tunesmith.serving import ModelServer

    server = ModelServer(cache, cache_dir=Path(tempfile.mkdtemp()))  # the default engine
    server.generate(base, TEMPLATE, PROMPTS[0], greedy(4), adapters[0])
    gc.collect()
    one = rss_mb()
    for a in adapters[1:]:
        server.generate(base, TEMPLATE, PROMPTS[0], greedy(4), a)
    gc.collect()
    many = rss_mb()
    loaded = server.base(base)
    if loaded.llama is not None:
        resident, nbytes = len(loaded.llama.model.adapters), loaded.llama.model.adapter_bytes
    else:
        resident, nbytes = len(loaded.cache.names()), loaded.cache.nbytes
    return dict(one=one, many=many, resident=resident, mb=nbytes / 2**20)


def memory(base: Path, adapters: list[Path], cache: str) -> dict:
    args = [sys.executable, __file__, "--memory-child", json.dumps([str(base), cache])]
    args += [str(a) for a in adapters]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- throughput ------------------------------------------------------------------------------


def tunesmith_concurrent(server, base: Path, jobs, tokens: int) -> tuple[float, int]:
    results = [None] * len(jobs)

    def one(i, adapter, prompt):
        results[i] = server.generate(base, TEMPLATE, prompt, greedy(tokens), adapter)

    threads = [threading.Thread(target=one, args=(i, *job)) for i, job in enumerate(jobs)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return elapsed, sum(r.candidates_token_count for r in results)


def hf_generate(model, tokenizer, prompt: str, tokens: int) -> int:
    import torch

    from tunesmith.engine.prompting import PromptFormat

    text = PromptFormat(TEMPLATE, tokenizer).prompt(prompt)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            max_new_tokens=tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return int(out.shape[1] - ids.shape[1])


def baseline_reload_all(base: Path, jobs, tokens: int) -> tuple[float, int]:
    """Each request loads base + adapter with transformers + peft, then generates."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    start, produced = time.perf_counter(), 0
    for adapter, prompt in jobs:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        model = PeftModel.from_pretrained(model, adapter).eval()
        produced += hf_generate(model, tokenizer, prompt, tokens)
        del model
    return time.perf_counter() - start, produced


def baseline_adapter_per_request(base: Path, jobs, tokens: int) -> tuple[float, int]:
    """Stricter: the base stays loaded; each request loads its adapter with peft, in turn."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    start, produced = time.perf_counter(), 0
    for adapter, prompt in jobs:
        tuned = PeftModel.from_pretrained(model, adapter).eval()
        produced += hf_generate(tuned, tokenizer, prompt, tokens)
        model = tuned.unload()
    return time.perf_counter() - start, produced


# -- CPU share with a tuning run in the same process -----------------------------------------


def share_with_tuning(server, base: Path, jobs, tokens: int, alone: float) -> dict:
    """Generation with a LoRA run training in a thread of this process, against each alone."""
    from numbers_task import make_examples

    from tunesmith.engine import recipe

    train, _ = make_examples(400, 0)
    steps: list[float] = []  # when each step ended
    stop = threading.Event()

    def on_step(_report) -> bool:
        steps.append(time.perf_counter())
        return not stop.is_set()

    with tempfile.TemporaryDirectory() as out:
        run = recipe.Recipe(base_dir=base, examples=train, output_dir=Path(out), batch_size=8)
        thread = threading.Thread(target=_train_until_stopped, args=(run, on_step))
        thread.start()
        while len(steps) < 8:  # warm up, then time the run's steps on their own
            time.sleep(0.05)
        t0, n0 = time.perf_counter(), len(steps)
        while time.perf_counter() - t0 < alone:
            time.sleep(0.05)
        train_alone = (len(steps) - n0) / (time.perf_counter() - t0)
        n1 = len(steps)
        gen_time, _ = tunesmith_concurrent(server, base, jobs, tokens)
        train_shared = (len(steps) - n1) / gen_time
        stop.set()
        thread.join()
    return dict(
        gen_alone=alone, gen_shared=gen_time, train_alone=train_alone, train_shared=train_shared
    )


def _train_until_stopped(run, on_step) -> None:
    from tunesmith.engine import recipe

    try:
        recipe.run(run, on_step)
    except recipe.Stopped:
        pass


# -- latency ---------------------------------------------------------------------------------


def latency(server, base: Path, adapters: list[Path], tokens: int) -> tuple[float, float]:
    cold, warm = [], []
    for i, a in enumerate(adapters):
        prompt = PROMPTS[i % len(PROMPTS)]
        t = time.perf_counter()
        server.generate(base, TEMPLATE, prompt, greedy(tokens), a)
        cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        server.generate(base, TEMPLATE, prompt, greedy(tokens), a)
        warm.append(time.perf_counter() - t)
    return statistics.median(cold), statistics.median(warm)


# -- single stream against llama.cpp (each in a fresh process, so RSS is its own) -------------

STORY = "Write a long story about a robot who learns to paint."
STREAM_TOKENS = 128


def decode_rate(generate) -> dict:
    """Decode tokens/s of ``generate(max_tokens) -> tokens``: a 1-token call times the prefill,
    which the 128-token call's time less is the decode."""
    generate(1)  # warm-up: kernels, caches
    t = time.perf_counter()
    generate(1)
    prefill = time.perf_counter() - t
    t = time.perf_counter()
    tokens, text = generate(STREAM_TOKENS)
    total = time.perf_counter() - t
    return dict(
        tokens_per_s=(tokens - 1) / (total - prefill), tokens=tokens, rss=rss_mb(), text=text
    )


def stream_child_tunesmith(base: Path, spec: str) -> dict:
    """``spec``: ENGINE:WEIGHTS, e.g. ``llama.cpp:float16``."""
    from tunesmith.serving import ModelServer

    engine, weights = spec.split(":")
    with tempfile.TemporaryDirectory() as cache:
        server = ModelServer(weights=weights, engine=engine, cache_dir=Path(cache))

        def generate(n):
            c = server.generate(base, TEMPLATE, STORY, greedy(n)).candidates[0]
            return c.token_count, c.output

        return decode_rate(generate)


def stream_child_llama(gguf: Path, _weights: str) -> dict:
    from llama_cpp import Llama

    from tunesmith.engine import cores  # imports no torch: neither child holds it unasked

    llm = Llama(str(gguf), n_ctx=512, n_threads=cores.usable(), verbose=False)

    def generate(n):
        out = llm.create_chat_completion(
            [{"role": "user", "content": STORY}], max_tokens=n, temperature=0.0
        )
        return out["usage"]["completion_tokens"], out["choices"][0]["message"]["content"]

    return decode_rate(generate)


def write_f16_gguf(base: Path, out: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.engine.export.gguf_file import write_model

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    template = AutoTokenizer.from_pretrained(base).chat_template
    return write_model(model, base, out, "F16", name="base", chat_template=template)


def single_stream(base: Path, folder: Path) -> None:
    def child(kind: str, path: Path, weights: str = "") -> dict:
        args = [sys.executable, __file__, "--stream-child", kind, str(path), weights]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    print(f"single stream, {STREAM_TOKENS} new tokens, greedy, base model with its chat template")
    specs = ["torch:float16", "torch:float32"]
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print(
            "          llama.cpp: not installed (make llama-cpp): tunesmith's PyTorch engine only"
        )
        llama = False
    else:
        specs.insert(0, "llama.cpp:float16")
        llama = True
    ours = {spec: child("tunesmith", base, spec) for spec in specs}
    for spec, r in ours.items():
        engine, weights = spec.split(":")
        print(
            f"          tunesmith, {engine} engine, {weights} weights: {r['tokens_per_s']:6.1f}"
            f" tokens/s, RSS {r['rss']:5.0f} MiB"
        )
    half, full = ours["torch:float16"], ours["torch:float32"]
    print(
        f"          PyTorch float16 / float32 decode {half['tokens_per_s'] / full['tokens_per_s']:.2f};"
        f" same answer: {half['text'] == full['text']}"
    )
    if not llama:
        return
    theirs = child("llama", write_f16_gguf(base, folder / "base-f16.gguf"))
    print(
        f"          llama.cpp itself (F16 GGUF):          {theirs['tokens_per_s']:6.1f} tokens/s,"
        f" RSS {theirs['rss']:5.0f} MiB"
    )
    for spec in ("llama.cpp:float16", "torch:float16"):
        ratio = ours[spec]["tokens_per_s"] / theirs["tokens_per_s"]
        print(
            f"          tunesmith {spec} / llama.cpp decode {ratio:.2f} (aim >= 0.8);"
            f" same answer: {ours[spec]['text'] == theirs['text']}"
        )
    served = serve_memory()
    print(
        f"          tunesmith serve (default settings), RSS after this answer:"
        f" {served['rss']:5.0f} MiB = {served['rss'] * 2**20 / 1e6:.0f} MB (aim <= 500 MB);"
        f" torch loaded: {served['torch']}; its idle tuning worker, readied: {served['worker']:.0f} MiB"
    )
    print()


def serve_memory() -> dict:
    """A real ``tunesmith serve`` in an empty home (the default engine and base model, its
    tuning worker beside it, readied for a first job as it is whenever the queue is empty):
    the server process's RSS after one answer of the single-stream request, whether torch's
    library is mapped in it, and its child processes' RSS."""
    import os
    import urllib.request

    from served import readied_server

    from tunesmith.settings import DEFAULT_BASE_MODEL

    body = {
        "contents": [{"parts": [{"text": STORY}]}],
        "generationConfig": {"maxOutputTokens": STREAM_TOKENS, "temperature": 0},
    }
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TUNESMITH_HOME": home}
        with readied_server(Path(home), env) as (url, server):
            ask = urllib.request.Request(
                f"{url}/v1beta/models/{DEFAULT_BASE_MODEL.removeprefix('models/')}:generateContent",
                json.dumps(body).encode(),
                {"content-type": "application/json"},
            )
            urllib.request.urlopen(ask, timeout=900).read()
            tasks = Path(f"/proc/{server.pid}/task").glob("*/children")  # any thread's
            children = [pid for task in tasks for pid in task.read_text().split()]
            return dict(
                rss=rss_mb(server.pid),
                torch="libtorch" in Path(f"/proc/{server.pid}/maps").read_text(),
                worker=sum(rss_mb(child) for child in children),
            )


# -- throughput of each engine against llama.cpp serving the same adapters in turn ------------


def llama_cpp_in_turn(base: Path, cache: Path, jobs, tokens: int) -> tuple[float, int]:
    """llama-cpp-python on its own: the base's F16 GGUF and each adapter's GGUF LoRA (the
    files tunesmith serves), one request after another, switching the context's adapter per
    request, greedy with llama.cpp's own sampler."""
    import ctypes

    import llama_cpp
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from tunesmith.engine.prompting import PromptFormat
    from tunesmith.records.conversations import Conversation
    from tunesmith.serving import llama as engine

    tokenizer = AutoTokenizer.from_pretrained(base)
    eos = json.loads((base / "generation_config.json").read_text())["eos_token_id"]
    eos = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    config = AutoConfig.from_pretrained(base)
    gguf = engine.base_gguf(base, config, tokenizer, "float16", cache)
    llm = llama_cpp.Llama(str(gguf), n_ctx=2048, n_threads=torch.get_num_threads(), verbose=False)
    # Where llama.cpp repacks the weights (AMX), each adapter tensor logs an error-level line
    # that it stays in plain CPU memory: 210 per adapter, 10,000 lines over a run.
    llama_log = logging.getLogger("llama-cpp-python")
    level = llama_log.level
    llama_log.setLevel(logging.CRITICAL)
    try:
        handles = {
            a: llama_cpp.llama_adapter_lora_init(
                llm.model, str(engine.adapter_gguf(a, config, cache)).encode()
            )
            for a in dict.fromkeys(a for a, _ in jobs)
        }
    finally:
        llama_log.setLevel(level)
    fmt = PromptFormat(TEMPLATE, tokenizer)
    prompts = [(a, fmt.prompt_ids(Conversation.ask(p))) for a, p in jobs]
    start, produced = time.perf_counter(), 0
    for adapter, ids in prompts:
        chosen = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(handles[adapter])
        llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, chosen, 1, (ctypes.c_float * 1)(1.0))
        llm.reset()  # the cached keys were made under another adapter
        for n, token in enumerate(llm.generate(ids, temp=0.0, reset=True)):
            if token in eos or n == tokens:
                break
            produced += 1
    return time.perf_counter() - start, produced


def engines_against_llama_cpp(
    base: Path, adapters: list[Path], folder: Path, tokens: int, rounds: int
) -> None:
    """Each N ``rounds`` times, the three servers in turn each round (a burst lasts seconds:
    one run's ratio swings with the machine's noise, alternating shows how far)."""
    from tunesmith.serving import ModelServer

    models = adapters[:8]
    print(
        f"throughput by engine: N concurrent greedy requests over {len(models)} tuned models,"
        f" at most {tokens} new tokens; generated tokens/s"
    )
    servers = {
        e: ModelServer(engine=e, cache_dir=folder / "serving") for e in ("llama.cpp", "torch")
    }
    for server in servers.values():  # warm: the base and the adapters loaded once
        for a in models:
            server.generate(base, TEMPLATE, PROMPTS[0], greedy(2), a)
    for n, _round in itertools.product((8, 32), range(rounds)):
        jobs = [(models[i % len(models)], PROMPTS[i % len(PROMPTS)]) for i in range(n)]
        rates = {}
        for engine, server in servers.items():
            elapsed, produced = tunesmith_concurrent(server, base, jobs, tokens)
            rates[f"tunesmith ({engine})"] = produced / elapsed
        elapsed, produced = llama_cpp_in_turn(base, folder / "serving", jobs, tokens)
        rates["llama.cpp in turn"] = produced / elapsed
        line = ", ".join(f"{k} {v:5.1f}" for k, v in rates.items())
        ratio = rates["tunesmith (llama.cpp)"] / rates["llama.cpp in turn"]
        print(f"          N={n:2d}: {line} -> tunesmith / llama.cpp {ratio:.2f} (aim > 1)")
    print()


def main() -> None:
    import torch

    p = argparse.ArgumentParser()
    p.add_argument("--adapters", type=int, default=50)
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--models", type=int, default=8)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--cache", default=DEFAULT_ADAPTER_CACHE, help="TUNESMITH_ADAPTER_CACHE")
    p.add_argument("--skip-baseline-reload", action="store_true")
    p.add_argument(
        "--quick", action="store_true", help="memory with --cache only; no base-kept baseline"
    )
    p.add_argument("--single-stream", action="store_true", help="only tunesmith vs llama.cpp")
    p.add_argument(
        "--engines", action="store_true", help="only single stream and throughput by engine"
    )
    p.add_argument("--rounds", type=int, default=1, help="of throughput by engine, alternated")
    args = p.parse_args()
    print(f"CPU: {describe()}")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its bars would land in the middle of the tables

    from tunesmith.serving import ModelServer

    base = base_dir()
    with tempfile.TemporaryDirectory() as tmp:
        single_stream(base, Path(tmp))
        if args.single_stream:
            return
        t = time.perf_counter()
        adapters = make_adapters(base, Path(tmp), max(args.adapters, args.models + 4))
        size = (adapters[0] / "adapter_model.safetensors").stat().st_size / 2**20
        print(f"adapters: {len(adapters)} random rank-8 all-linear LoRA adapters saved with peft")
        print(f"          ({size:.1f} MiB each on disk, made in {time.perf_counter() - t:.0f} s)")
        print(f"threads:  torch {torch.get_num_threads()}; cache {args.cache}\n")
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            print("throughput by engine: llama.cpp not installed (make llama-cpp)\n")
        else:
            engines_against_llama_cpp(base, adapters, Path(tmp), args.tokens, args.rounds)
        if args.engines:
            return

        for cache in (args.cache,) if args.quick else (args.cache, ALL_RESIDENT):
            m = memory(base, adapters[: args.adapters], cache)
            print(f"memory    TUNESMITH_ADAPTER_CACHE={cache}")
            print(f"          RSS serving 1 tuned model:   {m['one']:7.0f} MiB")
            print(
                f"          RSS serving {args.adapters} tuned models: {m['many']:7.0f} MiB "
                f"({m['resident']} adapters resident, {m['mb']:.0f} MiB of adapter weights)"
            )
            print(f"          ratio {m['many'] / m['one']:.2f}  (aim < 1.2)\n")

        jobs = [
            (adapters[i % args.models], PROMPTS[i % len(PROMPTS)]) for i in range(args.requests)
        ]
        server = ModelServer(args.cache, engine="torch", cache_dir=Path(tmp) / "serving")
        for a in adapters[: args.models]:  # warm: load the base and the 8 adapters once
            server.generate(base, TEMPLATE, PROMPTS[0], greedy(2), a)
        ts_time, ts_tokens = tunesmith_concurrent(server, base, jobs, args.tokens)
        sched = server.scheduler
        print(
            f"throughput tunesmith, {args.requests} concurrent over {args.models} tuned models: "
            f"{ts_time:6.1f} s, {ts_tokens} tokens, {args.requests / ts_time:.2f} req/s "
            f"(largest batch {sched.largest_batch} rows)"
        )
        if not args.quick:
            b2_time, b2_tokens = baseline_adapter_per_request(base, jobs, args.tokens)
            print(
                f"           baseline: base kept, peft adapter load per request, in turn: "
                f"{b2_time:6.1f} s, {b2_tokens} tokens -> tunesmith {b2_time / ts_time:.1f}x"
            )
        if not args.skip_baseline_reload:
            b1_time, b1_tokens = baseline_reload_all(base, jobs, args.tokens)
            print(
                f"           baseline: load tuned model (base + adapter) with peft per request: "
                f"{b1_time:6.1f} s, {b1_tokens} tokens -> tunesmith {b1_time / ts_time:.1f}x "
                f"(aim >= 5x)"
            )

        if not args.quick:
            sh = share_with_tuning(server, base, jobs, args.tokens, ts_time)
            print(
                f"\nCPU share with a tuning run in the same process (LoRA, batch 8):"
                f"\n          generation: {sh['gen_alone']:6.1f} s alone, {sh['gen_shared']:6.1f} s"
                f" beside tuning -> {sh['gen_alone'] / sh['gen_shared']:.0%} of its speed"
                f"\n          tuning:     {sh['train_alone']:6.2f} steps/s alone, "
                f"{sh['train_shared']:6.2f} beside generation -> "
                f"{sh['train_shared'] / sh['train_alone']:.0%} of its speed"
            )

        fresh = adapters[args.models : args.models + 4]
        cold, warm = latency(server, base, fresh, 16)
        print(
            f"\nlatency   16 tokens, cold adapter (read from safetensors): {cold * 1000:6.0f} ms"
            f"\n          warm adapter (cached):                      {warm * 1000:6.0f} ms"
            f"\n          cold / warm {cold / warm:.2f}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--memory-child":
        base_s, cache = json.loads(sys.argv[2])
        result = memory_child(Path(base_s), [Path(a) for a in sys.argv[3:]], cache)
        print(json.dumps(result))
    elif len(sys.argv) > 4 and sys.argv[1] == "--stream-child":
        child = stream_child_tunesmith if sys.argv[2] == "tunesmith" else stream_child_llama
        print(json.dumps(child(Path(sys.argv[3]), sys.argv[4])))
    else:
        main()
