"""Training speed: tunesmith's engine against a plain transformers Trainer + peft, one run.

    .venv/bin/python benchmarks/train_speed.py              # 300 examples, batch 8, 3 epochs
    .venv/bin/python benchmarks/train_speed.py --rounds 2   # alternate the two twice
                                                            # (every create -> ACTIVE job too)
    .venv/bin/python benchmarks/train_speed.py --full       # create -> ACTIVE: 200 and 900
                                                            # examples, 1 and 3 epochs

Both tune the packaged default base model on the same next-number examples (see
numbers_task.py) with the same batch size, epochs, LoRA settings (all-linear, r 8, alpha 16),
peak learning rate, warm-up + cosine schedule and gradient clipping. The baseline is what a
user writes with the libraries' defaults: a ``Trainer`` in float32 with padded random batches.
tunesmith runs twice per round: ``eager`` is the path a short run on a fresh worker takes
(``Recipe.compile=False``); ``compiled`` is a worker whose base has compiled decoder layers
from an earlier job, the state a long-lived worker is in after its first long run. Compiling
is paid once per worker; its cost is measured first, as that earlier job.
Printed, all measured in this run (timings on a shared machine are noisy, so the runs
alternate and the ratios are what to read):

* the one-time cost of compiling the layers (the first job on a fresh worker pays it);
* real (non-padding) tokens per second of each and their ratio to the baseline;
* each one's final training loss and held-out exact match;
* useful training FLOP/s as a share of this machine's matmul peak, measured here in float32
  and, where the processor is fast at it, bfloat16. Useful FLOPs per real token: 4 x the
  linear weights of the layers (forward and the input-gradient backward; frozen weights need
  no weight gradient) + 6 x the LoRA weights + attention, and 4 x the vocabulary projection
  per target token; counted over the positions each side computes (tunesmith runs a batch's
  shared start, its chat template's system prompt say, once: ``models.shared_start``), so the
  share says how well the arithmetic that is done uses the machine;
* what a user waits for: wall time from ``create_tuned_model`` to ACTIVE on a fresh home and a
  worker process that has not run a job before: the embedded SDK's, which starts with the call
  (its imports, loading the base, tuning, saving), and ``tunesmith serve``'s, started before
  and readied (the default base and its compiled layers loaded while it waited; the SDK
  calls the server), against the plain loop's wall
  time for the same job in this process (loading the base, training, saving the adapter; its
  imports already paid, which favours the baseline), with both models' held-out exact match
  and how long the first step took to end (the fresh worker's fixed part, plus one step).
  ``--workers warm`` adds the embedded worker a previous script left running (what a user's
  next script within ``TUNESMITH_WORKER_IDLE_SECONDS`` finds: it ran the seed's job).
  By default 200 examples x 1 epoch (``--wait-sizes``, ``--wait-epochs``); ``--full`` runs
  200 and 900 examples x 1 and 3 epochs;
* time to a usable model: the seed's 15-example, 3-epoch job from ``create_tuned_model`` to
  ACTIVE through the embedded SDK, base model already converted.

OpenMP threads here wait as in the worker processes tunesmith starts (a bounded spin,
``tunesmith.jobs.embedded.openmp_env``) unless the environment says otherwise, so both sides
run under one policy.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tunesmith.jobs.embedded import openmp_env  # imports no torch

openmp_env(os.environ)  # before torch loads OpenMP

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402
from numbers_task import (  # noqa: E402
    default_base_model,
    evaluate,
    exact_match,
    greedy_answers,
    make_examples,
)
from served import readied_server  # noqa: E402

from tunesmith.engine import models, recipe  # noqa: E402
from tunesmith.engine.batching import IGNORE, collate, plan_batches  # noqa: E402
from tunesmith.engine.prompting import PromptFormat  # noqa: E402

SEED_JOB = [
    ("1", "2"), ("3", "4"), ("-3", "-2"), ("twenty two", "twenty three"),
    ("two hundred", "two hundred one"), ("ninety nine", "one hundred"), ("8", "9"),
    ("-98", "-97"), ("1,000", "1,001"), ("10,100,000", "10,100,001"),
    ("thirteen", "fourteen"), ("eighty", "eighty one"), ("one", "two"),
    ("three", "four"), ("seven", "eight"),
]  # fmt: skip


def matmul_peak(dtype: torch.dtype, size: int = 2048, seconds: float = 3.0) -> float:
    """Best FLOP/s of a square matmul over a few seconds (the machine's practical peak)."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - t))
    return best


def useful_flops(base_dir: Path, rows, epochs: int, lora_rank: int, batch_size: int = 0,
                 seed: int = 0) -> float:  # fmt: skip
    """Training FLOPs of the token positions a run computes (see the module docstring), for
    the whole run. Without ``batch_size`` every row runs in full (the plain loop); with it,
    tunesmith's batches, each running its rows' shared start once (``models.shared_start``)."""
    import json

    cfg = json.loads((base_dir / "config.json").read_text())
    h, layers, inter = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    heads, vocab = cfg["num_attention_heads"], cfg["vocab_size"]
    kv = cfg.get("num_key_value_heads", heads) * (h // heads)
    linear = layers * (2 * h * h + 2 * h * kv + 3 * h * inter)
    lora = layers * lora_rank * (9 * h + 2 * kv + 3 * inter)

    def row(ids, labels, shared: int) -> float:  # its first ``shared`` positions run elsewhere
        n, targets = len(ids), sum(label != IGNORE for label in labels)
        attention = layers * 3 * 4 * (n * n - shared * shared) * h / 2  # causal QK^T, AV; f+b
        return (n - shared) * (4 * linear + 6 * lora) + attention + targets * 4 * h * vocab

    if not batch_size:
        return epochs * sum(row(ids, labels, 0) for ids, labels in rows)
    total = 0.0
    for indices, _epoch in plan_batches(len(rows), epochs, batch_size, seed):  # as packed runs
        batch = [rows[i] for i in indices]
        ids, labels, mask = collate(batch, 0)
        start = models.shared_start(ids, mask, labels)
        total += sum(row(*r, start if k else 0) for k, r in enumerate(batch))
    return total


def run_tunesmith(base_dir, template, train, heldout, args, out: Path, compile: bool | None):
    stats = {"tokens": 0, "losses": []}

    def on_step(r: recipe.StepReport) -> bool:
        stats["tokens"] += r.tokens
        stats["losses"].append(r.mean_loss)
        return True

    r = recipe.Recipe(
        base_dir=base_dir,
        examples=train,
        output_dir=out,
        epoch_count=args.epochs,
        batch_size=args.batch_size,
        prompt_template=template,
        seed=args.seed,
        compile=compile,
    )
    started = time.perf_counter()
    recipe.run(r, on_step)  # everything a job does: tokenise, wrap, train, save
    secs = time.perf_counter() - started
    acc = evaluate(base_dir, out, heldout, template)
    return secs, stats["tokens"], _final(stats["losses"]), acc


def run_trainer(base_dir, template, train, heldout, args, out: Path):
    """The baseline: a plain Trainer + peft with the libraries' defaults, float32."""
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    job_started = time.perf_counter()  # what the user waits for: load, train, save
    tokenizer = recipe.load_tokenizer(base_dir)
    fmt = PromptFormat(template, tokenizer)
    rows = [recipe.encode(tokenizer, fmt, i, o, 1024) for i, o in train]
    data = [{"input_ids": ids, "labels": labels} for ids, labels in rows]
    torch.manual_seed(args.seed)
    model = get_peft_model(
        models.load_model(base_dir),
        LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                   task_type="CAUSAL_LM"),
    )  # fmt: skip
    losses: list[float] = []

    class Losses(TrainerCallback):
        def on_log(self, _args, _state, _control, logs=None, **_kw):
            if logs and "loss" in logs:
                losses.append(logs["loss"])

    training_args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        learning_rate=recipe.LORA_LEARNING_RATE,
        lr_scheduler_type="cosine",
        warmup_steps=0.06,
        max_grad_norm=1.0,
        weight_decay=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=args.seed,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
        callbacks=[Losses()],
    )
    trainer.remove_callback(PrinterCallback)  # its per-step log lines would bury the table
    started = time.perf_counter()
    trainer.train()
    secs = time.perf_counter() - started
    model.save_pretrained(out / "adapter", safe_serialization=True)
    waited = time.perf_counter() - job_started
    tokens = args.epochs * sum(len(ids) for ids, _ in rows)
    answers = greedy_answers(model, tokenizer, fmt.prompt, [i for i, _ in heldout])
    acc = exact_match(answers, [o for _, o in heldout])
    return secs, tokens, _final(losses), acc, rows, waited


CREATE = """
import json, sys, time
import tunesmith as ts
data, epochs, batch, lr = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
name = sys.argv[5] if len(sys.argv) > 5 else "speed"
started, wall = time.perf_counter(), time.time()
op = ts.create_tuned_model("models/text-bison-001", [{"text_input": i, "output": o} for i, o in data],
                           id=name, epoch_count=epochs, batch_size=batch, learning_rate=lr)
model = op.result(timeout=7200)
first_step = model.tuning_task.snapshots[0].compute_time.timestamp() - wall
print(json.dumps([time.perf_counter() - started, first_step, model.state.name, op.name]))
"""


def create_to_active(base_models_dir: Path, base_dir: Path, train, epochs: int, batch: int, heldout,
                     template, worker: str = "embedded"):  # fmt: skip
    """Seconds from ``create_tuned_model`` to ACTIVE in a fresh script on a fresh home, seconds
    from the call to the end of the first step, and the tuned model's held-out exact match.
    ``worker`` (:data:`WORKERS`) is the worker the job runs on: ``embedded``, the SDK's worker,
    which starts with the call; ``server``, the worker of a ``tunesmith serve`` started on that
    home beforehand, once it has readied itself (``TUNESMITH_WORKER_READY``); ``warm``, the
    embedded worker a previous script left running (it ran the seed's job, and waits
    ``TUNESMITH_WORKER_IDLE_SECONDS`` for the next)."""
    home = Path(tempfile.mkdtemp(prefix="tunesmith-wait-"))
    (home / "base-models").symlink_to(base_models_dir.resolve(), target_is_directory=True)
    idle = "60" if worker == "warm" else "2"
    env = {**os.environ, "TUNESMITH_HOME": str(home), "TUNESMITH_WORKER_IDLE_SECONDS": idle}
    for var in ("TUNESMITH_DATABASE_URL", "TUNESMITH_API_ENDPOINT", "TUNESMITH_API_KEY"):
        env.pop(var, None)
    args = [json.dumps(train), str(epochs), str(batch), str(recipe.LORA_LEARNING_RATE)]

    def script(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", CREATE, *argv], env=env, capture_output=True,
                              text=True, check=False)  # fmt: skip

    with contextlib.ExitStack() as stack:
        if worker == "server":
            env["TUNESMITH_API_ENDPOINT"], _ = stack.enter_context(readied_server(home, env))
        out = None
        if worker == "warm":
            stack.callback(_stop_embedded_worker, home)
            out = script(json.dumps(SEED_JOB), "3", "2", "0.001", "seed")
        if out is None or out.returncode == 0:
            out = script(*args)
    try:
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        secs, first_step, state, operation = json.loads(out.stdout.strip().splitlines()[-1])
        assert state == "ACTIVE", state
        adapter = home / "adapters" / operation.rsplit("/", 1)[-1]
        return secs, first_step, evaluate(base_dir, adapter, heldout, template)
    finally:
        time.sleep(3)  # let the idle embedded worker leave before its home goes
        shutil.rmtree(home, ignore_errors=True)


WORKERS = ("embedded", "server", "warm")  # create_to_active's ``worker``


def _stop_embedded_worker(home: Path) -> None:
    """Stop the embedded worker a ``warm`` run left waiting (its lock file names it)."""
    from tunesmith.settings import get_settings

    lock = dataclasses.replace(get_settings(), home=home).worker_lock
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(lock.read_text()), signal.SIGTERM)


def waiting_table(args, base_dir, template, examples, heldout, peak) -> None:
    """create -> ACTIVE on a worker that has not run a job before, against the plain loop's
    load + train + save: the embedded worker the call starts, and a server's readied one.
    With ``--rounds N`` every job runs N times, the plain loop first each time, and the
    median of each pair's ratio closes the table: the machine's speed can drift between
    rounds by more than tunesmith's changes move it, and a ratio of one pair drifts less."""
    from tunesmith.settings import get_settings

    sizes = [200, 900] if args.full else args.wait_sizes
    epochs_list = [1, 3] if args.full else args.wait_epochs
    print(f"\nwhat a user waits for, batch {args.batch_size} (fresh home; a worker's first job: "
          "embedded = the SDK's worker, started by the call; server = tunesmith serve's, readied; "
          "or warm = the embedded worker a previous script's seed job left running)")  # fmt: skip
    print(f"{'examples':>9}{'epochs':>7}{'plain loop':>12}{'worker':>10}{'tunesmith':>11}{'first step':>12}"
          f"{'ratio':>7}{'exact (plain / tunesmith)':>28}"
          + "".join(f"{'of ' + name + ' peak':>18}" for name in peak))  # fmt: skip
    ratios: dict[tuple[int, int, str], list[float]] = {}
    for _ in range(args.rounds):
        for size in sizes:
            train = examples[:size]
            for epochs in epochs_list:
                job = argparse.Namespace(**{**vars(args), "epochs": epochs})
                with tempfile.TemporaryDirectory() as tmp:
                    *_, plain_acc, rows, plain = run_trainer(
                        base_dir, template, train, heldout, job, Path(tmp)
                    )
                flops = useful_flops(base_dir, rows, epochs, 8, args.batch_size, args.seed)
                for worker in args.workers:
                    ours, first_step, ours_acc = create_to_active(
                        get_settings().base_models_dir, base_dir, train, epochs, args.batch_size,
                        heldout, template, worker,
                    )  # fmt: skip
                    ratios.setdefault((size, epochs, worker), []).append(plain / ours)
                    rate = flops / ours  # over all it waited for
                    print(f"{size:9}{epochs:7}{plain:11.0f}s{worker:>10}{ours:10.0f}s{first_step:11.1f}s"
                          f"{plain / ours:6.2f}x{plain_acc:16.1%} / {ours_acc:.1%}"
                          + "".join(f"{rate / p:18.0%}" for p in peak.values()), flush=True)  # fmt: skip
    if args.rounds > 1:
        print(
            f"\nmedian ratio over {args.rounds} rounds (each round's plain loop against its own tunesmith run)"
        )
        for (size, epochs, worker), each in ratios.items():
            listed = ", ".join(f"{r:.2f}x" for r in each)
            print(f"{size:9}{epochs:7}{worker:>10}{statistics.median(each):8.2f}x   ({listed})")


def _final(losses: list[float]) -> float:
    tail = losses[-max(1, len(losses) // 10) :]  # the last tenth: one batch is noisy
    return sum(tail) / len(tail)


def compile_seconds(base_dir: Path, template, train) -> float:
    """What compiling the layers adds to the first job on a fresh worker: a short job with
    ``compile=True`` against the same job eager (both load and wrap the base). With the
    base's own prompt template, as the code compiled ahead at setup was."""
    seconds = []
    for compile in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            job = recipe.Recipe(
                base_dir, train[:16], Path(tmp), 1, 8, prompt_template=template, compile=compile
            )
            recipe.run(job)
            seconds.append(time.perf_counter() - started)
    return seconds[1] - seconds[0]


def seed_job_seconds(base_models_dir: Path) -> tuple[float, int]:
    """create_tuned_model -> ACTIVE for the seed's job, in a fresh home sharing the base."""
    import tunesmith as ts
    from tunesmith.sdk import clients

    home = Path(tempfile.mkdtemp(prefix="tunesmith-seed-"))
    (home / "base-models").symlink_to(base_models_dir.resolve(), target_is_directory=True)
    saved = {k: os.environ.get(k) for k in ("TUNESMITH_HOME", "TUNESMITH_WORKER_IDLE_SECONDS")}
    os.environ.update(TUNESMITH_HOME=str(home), TUNESMITH_WORKER_IDLE_SECONDS="2")
    clients.configure()
    try:
        started = time.perf_counter()
        op = ts.create_tuned_model(
            source_model="models/text-bison-001",
            training_data=[{"text_input": i, "output": o} for i, o in SEED_JOB],
            id="number-generator",
            epoch_count=3,
            batch_size=2,
            learning_rate=0.001,
        )
        model = op.result(timeout=1800)
        secs = time.perf_counter() - started
        assert model.state is ts.TunedModelState.ACTIVE, model.state
        return secs, op.metadata.total_steps
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        clients.configure()
        time.sleep(3)  # let the idle embedded worker leave before its home goes
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--heldout", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="baseline/tunesmith alternations, in the throughput and the create -> ACTIVE tables",
    )
    parser.add_argument("--skip-seed-job", action="store_true")
    parser.add_argument(
        "--wait-sizes",
        type=lambda t: [int(x) for x in t.split(",")],
        default=[200],
        help="create -> ACTIVE runs: examples, comma-separated",
    )
    parser.add_argument(
        "--wait-epochs",
        type=lambda t: [int(x) for x in t.split(",")],
        default=[1],
        help="create -> ACTIVE runs: epochs, comma-separated",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="create -> ACTIVE for 200 and 900 examples x 1 and 3 epochs",
    )
    parser.add_argument(
        "--workers",
        type=lambda t: t.split(","),
        default=["embedded", "server"],
        help="create -> ACTIVE on which workers: embedded, server (first jobs), warm (the "
        "embedded worker a previous script left running), comma-separated",
    )
    parser.add_argument(
        "--skip-throughput",
        action="store_true",
        help="only the create -> ACTIVE table (and the seed job)",
    )
    args = parser.parse_args(argv)

    base_dir, template = default_base_model()
    most = max([args.train, *([900] if args.full else args.wait_sizes)])
    examples, heldout = make_examples(most, args.heldout)
    train = examples[: args.train]
    print(f"CPU: {describe()}")
    print(
        f"{len(train)} examples x {args.epochs} epochs, batch {args.batch_size}, LoRA all-linear "
        f"r 8, lr {recipe.LORA_LEARNING_RATE:g}; {torch.get_num_threads()} threads; "
        f"bf16 fast here: {recipe.bf16_supported()}"
    )
    peak = {"float32": matmul_peak(torch.float32)}
    if recipe.bf16_supported():  # elsewhere one bf16 matmul of this size takes most of a minute
        peak["bfloat16"] = matmul_peak(torch.bfloat16)
    print("matmul peak: " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peak.items()))
    if not args.skip_throughput:
        throughput(args, base_dir, template, train, heldout, peak)
    waiting_table(args, base_dir, template, examples, heldout, peak)
    if not args.skip_seed_job:
        models.clear_cache()  # the seed job starts on a fresh worker, as a user's script does
        from tunesmith.settings import get_settings

        secs, steps = seed_job_seconds(get_settings().base_models_dir)
        print(f"seed job (15 examples, 3 epochs, {steps} steps): create -> ACTIVE in {secs:.0f} s")


def throughput(args, base_dir, template, train, heldout, peak) -> None:
    """Tokens per second of the engine in this process against the plain loop."""
    models.release(models.prepare(recipe.Recipe(base_dir, [], Path()), recipe.bf16_supported()))
    print(
        f"compiling the decoder layers, once per worker: {compile_seconds(base_dir, template, train):.0f} s"
    )
    results: dict[str, list] = {
        "trainer + peft": [],
        "tunesmith eager": [],
        "tunesmith compiled": [],
    }
    flops: dict[str, float] = {}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            *base_res, rows, _waited = run_trainer(
                base_dir, template, train, heldout, args, Path(tmp)
            )
            results["trainer + peft"].append(base_res)
            flops["trainer + peft"] = useful_flops(base_dir, rows, args.epochs, 8)
            flops["tunesmith eager"] = flops["tunesmith compiled"] = useful_flops(
                base_dir, rows, args.epochs, 8, args.batch_size, args.seed
            )
            for name, compile in (("tunesmith eager", False), ("tunesmith compiled", None)):
                results[name].append(
                    run_tunesmith(
                        base_dir, template, train, heldout, args, Path(tmp) / "a", compile
                    )
                )
    print(f"\n{'':20}{'tokens/s':>9}{'time':>8}{'loss':>8}{'exact':>8}"
          + "".join(f"{'of ' + name + ' peak':>18}" for name in peak))  # fmt: skip
    speed = {}
    for name, runs in results.items():
        for secs, tokens, loss, acc in runs:
            rate = flops[name] / secs
            print(
                f"{name:20}{tokens / secs:9.0f}{secs:7.0f}s{loss:8.4f}{acc:8.1%}"
                + "".join(f"{rate / p:18.0%}" for p in peak.values())
            )
        speed[name] = sum(t for _, t, _, _ in runs) / sum(s for s, _, _, _ in runs)
    print()
    for name in ("tunesmith eager", "tunesmith compiled"):
        print(f"{name} / baseline tokens per second: {speed[name] / speed['trainer + peft']:.2f}x")


if __name__ == "__main__":
    main()
