"""Load test: concurrent clients mixing list, get, generate and create against a real server.

Loopback only and bounded (``--requests`` in all, ``--seconds`` at most). Starts its own
``tunesmith serve`` on 127.0.0.1 with a fresh home, on the tiny test model unless ``--base``
names another, or uses ``--url`` (which must be a loopback address). Reports throughput,
p50/p99 latency per kind of call, every non-2xx by code, and checks that nothing was lost:
every accepted create ends ACTIVE or FAILED with a reason.

    .venv/bin/python benchmarks/load.py --clients 8 --requests 400 --seconds 120
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

MIX = {"list": 4, "get": 4, "generate": 2, "create": 1}
CREATE_BODY = {
    "baseModel": "models/text-bison-001",
    "tuningTask": {
        "hyperparameters": {"epochCount": 1, "batchSize": 2},
        "trainingData": {
            "examples": {
                "examples": [{"textInput": str(i), "output": str(i + 1)} for i in range(4)]
            }
        },
    },
}


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.codes: collections.Counter = collections.Counter()
        self.accepted: list[str] = []

    def add(self, kind: str, seconds: float, status: int) -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            if not 200 <= status < 300:
                self.codes[(kind, status)] += 1


def one_call(c: httpx.Client, kind: str, models: list[str], res: Results) -> None:
    start = time.perf_counter()
    try:
        if kind == "list":
            r = c.get("/v1beta/tunedModels", params={"pageSize": 20})
        elif kind == "get":
            target = random.choice(models) if models else "tunedModels/none"
            r = c.get(f"/v1beta/{target}")
        elif kind == "generate":
            r = c.post(
                "/v1beta/models/text-bison-001:generateText",
                json={"prompt": {"text": str(random.randint(0, 99))}, "maxOutputTokens": 4},
            )
        else:
            r = c.post("/v1beta/tunedModels", json=CREATE_BODY)
            if r.status_code == 200:
                op = r.json()["name"]
                with res.lock:
                    res.accepted.append(op)
                    models.append(op.rsplit("/operations/", 1)[0])
        status = r.status_code
    except httpx.HTTPError as e:
        status = 0  # no answer at all
        print(f"  {kind}: {type(e).__name__}", file=sys.stderr)
    res.add(kind, time.perf_counter() - start, status)


def run(url: str, clients: int, requests: int, seconds: float, headers: dict) -> Results:
    res, models = Results(), []
    kinds = [k for k, w in MIX.items() for _ in range(w)]
    deadline = time.monotonic() + seconds
    left = iter(range(requests))
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            while time.monotonic() < deadline:
                with lock:
                    if next(left, None) is None:
                        return
                one_call(c, random.choice(kinds), models, res)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client_loop) for _ in range(clients)]:
            f.result()
    return res


def settle(url: str, ops: list[str], headers: dict, timeout: float) -> collections.Counter:
    """Wait for every accepted create to end; counts of how each ended."""
    ends: collections.Counter = collections.Counter()
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
        for op in ops:
            while True:
                body = c.get(f"/v1beta/{op}").json()
                if body.get("done"):
                    if "response" in body and body["response"].get("state") == "ACTIVE":
                        ends["ACTIVE"] += 1
                    elif "error" in body and body["error"].get("message"):
                        ends["FAILED with a reason"] += 1
                        print(f"  {op} failed: {body['error']['message'][:200]}")
                    else:
                        ends[f"BAD END {body}"] += 1
                    break
                if time.monotonic() > deadline:
                    ends["NOT DONE"] += 1
                    break
                time.sleep(0.5)
    return ends


def report(res: Results, elapsed: float, ends: collections.Counter) -> bool:
    total = sum(len(v) for v in res.latency.values())
    print(f"\n{total} requests in {elapsed:.1f} s: {total / elapsed:.1f} requests/s")
    print(f"{'call':<10}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}")
    for kind, values in sorted(res.latency.items()):
        values = sorted(values)
        p50 = statistics.median(values) * 1000
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))] * 1000
        print(f"{kind:<10}{len(values):>6}{p50:>10.1f}{p99:>10.1f}")
    if res.codes:
        print("non-2xx:")
        for (kind, code), n in sorted(res.codes.items()):
            print(f"  {kind} {code or 'no answer'}: {n}")
    else:
        print("non-2xx: none")
    print(f"accepted creates: {len(res.accepted)}; ended: {dict(ends)}")
    lost = len(res.accepted) - ends["ACTIVE"] - ends["FAILED with a reason"]
    print("nothing lost" if lost == 0 else f"LOST OR UNSETTLED: {lost}")
    return lost == 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--settle-seconds", type=float, default=600)
    p.add_argument("--url", help="an already running server (loopback only)")
    p.add_argument("--key", help="API key for --url")
    p.add_argument("--base", help="base model folder (default: the tiny test model)")
    args = p.parse_args()
    headers = {"x-goog-api-key": args.key} if args.key else {}

    server = None
    if args.url:
        host = urlparse(args.url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            p.error("--url must be a loopback address")
        url = args.url
    else:
        from conftest import build_tiny_model
        from tunesmith_server import Server, server_env

        work = Path(tempfile.mkdtemp(prefix="tunesmith-load-"))
        base = args.base or str(build_tiny_model(work / "tiny-model"))
        env = server_env(work / "home", base, TUNESMITH_MAX_JOBS_PER_USER="0")
        server = Server(work / "home", env)
        url = server.url
        print(f"server {url}, home {work / 'home'}, base {base}")
    try:
        start = time.monotonic()
        res = run(url, args.clients, args.requests, args.seconds, headers)
        elapsed = time.monotonic() - start
        ends = settle(url, res.accepted, headers, args.settle_seconds)
        return 0 if report(res, elapsed, ends) else 1
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
