"""Serving scaling: how throughput and memory grow with concurrent requests and tuned models.

    .venv/bin/python benchmarks/serving_scaling.py [--tokens 32] [--plots docs/img] [--engine torch]

Each point is a fresh process serving the packaged SmolLM2-135M-Instruct with tunesmith's
batching server (:class:`tunesmith.serving.ModelServer`, the default adapter cache and float16
weights; ``--engine`` picks the serving engine, by default as a server does: llama.cpp where
it is installed), so its memory is its own (torch is imported only where the engine needs
it, and large buffers are mapped as in a server's process). The tuned models are random
rank-8 all-linear LoRA adapters saved with peft (see serving.py: a tuning run changes their
numbers, not their size or the serving path). Every request is greedy, ``--tokens`` new tokens.

* concurrent requests: 1 -> 64 requests at once, spread over up to 8 tuned models;
* tuned models in use: 64 concurrent requests spread over 1 -> 50 tuned models.

Printed per point (the second of two identical bursts): wall time of the burst, generated
tokens per second, the server's largest batch, resident memory after the burst and the
process's peak. ``--plots DIR`` (default docs/img) saves ``serving_concurrency.png`` and
``serving_adapters.png``. Timings on a shared machine are noisy: read the trend, not a point.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(base: Path, adapters: list[Path], requests: int, tokens: int, engine: str) -> dict:
    import resource

    from serving import PROMPTS, TEMPLATE, greedy, rss_mb, tunesmith_concurrent
    from tunesmith.serving import DEFAULT_ADAPTER_CACHE, ModelServer
    from tunesmith.serving.batcher import map_large_buffers

    map_large_buffers()  # as a server's process does
    server = ModelServer(DEFAULT_ADAPTER_CACHE, engine=engine, cache_dir=Path(tempfile.mkdtemp()))
    for a in adapters:  # load the base and every adapter once: the burst measures serving
        server.generate(base, TEMPLATE, PROMPTS[0], greedy(2), a)
    jobs = [(adapters[i % len(adapters)], PROMPTS[i % len(PROMPTS)]) for i in range(requests)]
    # One burst first: a server under traffic has made its batch shapes' kernels before (the
    # first burst of a shape is up to 2x slower); the second is measured.
    tunesmith_concurrent(server, base, jobs, tokens)
    elapsed, produced = tunesmith_concurrent(server, base, jobs, tokens)
    return {
        "seconds": elapsed,
        "tokens": produced,
        "largest_batch": server.scheduler.largest_batch,
        "rss": rss_mb(),
        "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def point(base: Path, adapters: list[Path], requests: int, tokens: int, engine: str) -> dict:
    spec = json.dumps([str(base), requests, tokens, engine])
    args = [sys.executable, __file__, "--child", spec]
    out = subprocess.run(
        args + [str(a) for a in adapters], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


HEADER = f"{'':>9}{'seconds':>9}{'tokens/s':>10}{'batch':>7}{'RSS':>10}{'peak RSS':>12}"


def _row(label: str, p: dict) -> str:
    return (
        f"{label:>9}{p['seconds']:8.1f}s{p['tokens'] / p['seconds']:10.1f}{p['largest_batch']:7}"
        f"{p['rss']:6.0f} MiB{p['peak']:8.0f} MiB"
    )


def plot(path: Path, xs, points, xlabel: str, title: str) -> None:
    from plots import scaling_plot

    rates = [p["tokens"] / p["seconds"] for p in points]
    peaks = [p["peak"] for p in points]
    scaling_plot(path, xs, rates, "generated tokens/s", peaks, xlabel, title)


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(HERE))
    from machine import cpu_model, describe

    from serving import base_dir, make_adapters

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--plots", type=Path, default=HERE.parent / "docs" / "img")
    parser.add_argument("--no-plots", action="store_true")
    ints = lambda text: [int(x) for x in text.split(",")]  # noqa: E731
    parser.add_argument("--concurrency", type=ints, default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--adapters", type=ints, default=[1, 2, 5, 10, 25, 50])
    parser.add_argument("--burst", type=int, default=64, help="requests in the adapters sweep")
    parser.add_argument("--engine", default="auto", choices=["auto", "llama.cpp", "torch"])
    args = parser.parse_args(argv)
    machine = describe()
    print(f"CPU: {machine}; {args.engine} engine, greedy, {args.tokens} new tokens a request")

    base = base_dir()
    with tempfile.TemporaryDirectory() as tmp:
        adapters = make_adapters(base, Path(tmp), max(max(args.adapters), 8))

        print(f"\nconcurrent requests (over up to 8 tuned models)\n{HEADER}")
        by_requests = []
        for n in args.concurrency:
            by_requests.append(point(base, adapters[: min(n, 8)], n, args.tokens, args.engine))
            print(_row(str(n), by_requests[-1]), flush=True)

        print(f"\ntuned models in use ({args.burst} concurrent requests)\n{HEADER}")
        by_adapters = []
        for n in args.adapters:
            by_adapters.append(point(base, adapters[:n], args.burst, args.tokens, args.engine))
            print(_row(str(n), by_adapters[-1]), flush=True)

    if not args.no_plots:
        shared = f"{args.tokens} tokens each; {cpu_model()}, {os.cpu_count()} cores"
        plot(args.plots / "serving_concurrency.png", args.concurrency, by_requests,
             "concurrent requests", f"Serving vs concurrent requests\n{shared}")  # fmt: skip
        plot(args.plots / "serving_adapters.png", args.adapters, by_adapters,
             f"tuned models in use ({args.burst} requests)",
             f"Serving vs tuned models\n{shared}")  # fmt: skip
        print(f"\nplots: {args.plots / 'serving_concurrency.png'}, "
              f"{args.plots / 'serving_adapters.png'}")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, str(HERE))
        base_s, requests, tokens, engine = json.loads(sys.argv[2])
        result = child(Path(base_s), [Path(a) for a in sys.argv[3:]], requests, tokens, engine)
        print(json.dumps(result))
    else:
        main()
