"""Quality benchmark: does tuning with the default hyperparameters teach the next-number task?

    .venv/bin/python benchmarks/quality.py                  # 300 examples x 3 epochs, seed 0
    .venv/bin/python benchmarks/quality.py --seeds 0 1 2    # judge defaults over seeds

Generates a few hundred training examples and a disjoint held-out set (see numbers_task.py),
tunes the packaged default base model with the engine exactly as a job would (default batch
size and learning rate from the service and the engine), and prints the held-out exact match
of the base model and of each tuned model. Single runs swing by several points: pass a few
seeds before drawing conclusions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from numbers_task import default_base_model, evaluate, make_examples  # noqa: E402

from tunesmith.engine import recipe  # noqa: E402
from tunesmith.service.tuning import DEFAULT_BATCH_SIZE  # noqa: E402


def tune(
    base_dir: Path, template, train, out: Path, args, seed: int
) -> tuple[Path, float, int, float]:
    """Run the engine; returns (adapter dir, seconds, real tokens, final mean loss)."""
    tokens, losses = 0, []

    def on_step(r: recipe.StepReport) -> bool:
        nonlocal tokens
        tokens += r.tokens
        losses.append(r.mean_loss)
        if r.step % 25 == 0:  # a heartbeat on stderr: runs take minutes on a busy machine
            print(f"  step {r.step}  loss {r.mean_loss:.4f}", file=sys.stderr, flush=True)
        return True

    r = recipe.Recipe(
        base_dir=base_dir,
        examples=train,
        output_dir=out,
        epoch_count=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        prompt_template=template,
        seed=seed,
    )
    started = time.perf_counter()
    recipe.run(r, on_step)
    tail = losses[-max(1, len(losses) // 10) :]  # last tenth: one batch's loss is noisy
    return out, time.perf_counter() - started, tokens, sum(tail) / len(tail)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=300, help="training examples")
    parser.add_argument("--heldout", type=int, default=200, help="held-out examples")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--learning-rate", type=float, default=None, help="default: engine's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--skip-base", action="store_true", help="don't score the base model")
    args = parser.parse_args(argv)

    base_dir, template = default_base_model()
    train, heldout = make_examples(args.train, args.heldout, args.data_seed)
    lr = args.learning_rate or recipe.LORA_LEARNING_RATE
    print(
        f"next-number task: {len(train)} training / {len(heldout)} held-out examples; "
        f"{args.epochs} epochs, batch {args.batch_size}, lr {lr:g}, "
        f"{recipe.total_steps(len(train), args.epochs, args.batch_size)} steps"
    )
    if not args.skip_base:
        print(
            f"base model            exact match {evaluate(base_dir, None, heldout, template):6.1%}"
        )
    scores = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            out, secs, tokens, loss = tune(
                base_dir, template, train, Path(tmp) / "adapter", args, seed
            )
            score = evaluate(base_dir, out, heldout, template)
        scores.append(score)
        print(
            f"tuned, seed {seed:<3}        exact match {score:6.1%}   final loss {loss:.4f}   "
            f"{secs:5.0f} s   {tokens / secs:5.0f} real tokens/s"
        )
    if len(scores) > 1:
        print(
            f"tuned, {len(scores)} seeds          mean {statistics.mean(scores):6.1%}   "
            f"min {min(scores):.1%}   max {max(scores):.1%}"
        )


if __name__ == "__main__":
    main()
