"""Tuning on conversations: a task that needs the whole conversation, base vs tuned, held out.

    .venv/bin/python benchmarks/conversations.py                 # 3 seeds, 96 conversations
    .venv/bin/python benchmarks/conversations.py --seeds 1 --train 48

Measured (AMD EPYC, 2 cores, avx512_bf16; SmolLM2-135M-Instruct, LoRA defaults, 3 epochs at
batch 8, 36 steps, 160-300 s a seed on a shared machine): held-out exact match tuned 80 %, 80 %,
73 % (mean 78 %), base 0 % on every seed.

Each conversation has a persona set by the system instruction and a word given in the first
user turn; the last user turn asks for the word back, and the persona says how to answer:

    system  You are Echo. When asked for the word, answer with it in capital letters only.
    user    Please remember the word "garden".
    model   I will remember it.
    user    Which word did I ask you to remember?
    model   GARDEN                 (Whisper: "garden"; Parrot: "garden garden")

So the right last answer needs both the system instruction and the first turn. Training uses
the packaged default base model, tunesmith's recipe (LoRA, its defaults) and every model turn
(the default); held-out conversations use words never seen in training. Answers are generated
greedily by tunesmith's serving code from the conversation without its last answer (rendered
by the same rule as training), and scored by exact match. The base model is scored the same
way. Printed: the machine, then per seed the tuned model's exact match, and the base's.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402
from numbers_task import default_base_model  # noqa: E402

from tunesmith.engine import models, recipe  # noqa: E402
from tunesmith.records.conversations import MODEL, USER, Conversation, Turn  # noqa: E402
from tunesmith.serving import Sampling  # noqa: E402

WORDS = """apple river garden window candle forest silver pocket rabbit mirror ladder pencil
orange castle blanket meadow button thunder violin basket lantern harbor pepper saddle tunnel
marble feather compass anchor helmet kettle lemon magnet napkin oyster pillow quilt rocket
shovel ticket umbrella wagon yogurt zipper bridge carpet dragon engine falcon guitar hammer
island jacket kitten lizard monkey needle ocean parrot puzzle rainbow sandal tiger tomato
valley walnut barrel cactus donkey eagle fiddle goblet hollow igloo jelly koala lobster
mitten noodle otter pebble quiver raisin salmon turtle urchin velvet walrus yacht zebra
acorn bucket cherry dolphin ember fossil glacier hazel ivory jasmine kayak lagoon mango
nectar orchid panda quartz robin spider tulip unicorn vortex willow badger cobalt dune
elbow fabric gravel hornet insect jungle kernel lotus muffin nickel olive pirate radish
saffron thistle ribbon sponge cookie crayon goose heron igloo lamb mango""".split()

PERSONAS = {
    "Echo": ("answer with it in capital letters only", str.upper),
    "Whisper": ("answer with it in small letters only", str.lower),
    "Parrot": ("answer with it twice, separated by a space", lambda w: f"{w} {w}"),
}
REMEMBER = ['Please remember the word "{}".', 'Keep this word in mind: "{}".', 'My word is "{}".']
ASK = ["Which word did I ask you to remember?", "What was my word?", "Tell me the word."]


def conversation(word: str, persona: str, rng: random.Random) -> Conversation:
    rule, answer = PERSONAS[persona]
    system = f"You are {persona}. When asked for the word, {rule}."
    return Conversation(
        [
            Turn(USER, rng.choice(REMEMBER).format(word)),
            Turn(MODEL, "I will remember it."),
            Turn(USER, rng.choice(ASK)),
            Turn(MODEL, answer(word)),
        ],
        system,
    )


def split(seed: int, n_train: int, n_heldout: int):
    rng = random.Random(seed)
    words = sorted(set(WORDS))
    rng.shuffle(words)
    held_words, train_words = words[:n_heldout], words[n_heldout:]
    names = sorted(PERSONAS)
    train = [
        conversation(train_words[i % len(train_words)], names[i % len(names)], rng)
        for i in range(n_train)
    ]
    heldout = [conversation(w, names[i % len(names)], rng) for i, w in enumerate(held_words)]
    return train, heldout


def exact_match(server, base_dir: Path, template, adapter_dir, heldout) -> float:
    greedy = Sampling(temperature=0.0, top_p=1.0, top_k=0, candidate_count=1, max_output_tokens=12)
    streams = [
        server.submit(
            base_dir, template, Conversation(c.turns[:3], c.system_instruction), greedy, adapter_dir
        )
        for c in heldout
    ]
    answers = [s.result().candidates[0].output.strip() for s in streams]
    right = sum(a == c.turns[3].text for a, c in zip(answers, heldout, strict=True))
    return right / len(heldout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train", type=int, default=96, help="training conversations")
    ap.add_argument("--heldout", type=int, default=30, help="held-out conversations")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    from tunesmith.serving import ModelServer

    print(f"machine: {describe()}")
    base_dir, template = default_base_model()
    server = ModelServer()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            train, heldout = split(seed, args.train, args.heldout)
            base = exact_match(server, base_dir, template, None, heldout)
            started = time.perf_counter()
            r = recipe.Recipe(
                base_dir=base_dir,
                examples=train,
                output_dir=Path(tmp) / f"seed-{seed}",
                epoch_count=args.epochs,
                batch_size=args.batch_size,
                prompt_template=template,
                seed=seed,
            )
            losses: list[float] = []
            recipe.run(r, lambda rep, out=losses: out.append(rep.mean_loss) or True)
            took = time.perf_counter() - started
            models.clear_cache()
            tuned = exact_match(server, base_dir, template, r.output_dir, heldout)
            rows.append((seed, base, tuned))
            print(
                f"seed {seed}: {len(train)} conversations x {args.epochs} epochs "
                f"({r.total_steps} steps, {took:.0f} s, loss {losses[0]:.2f} -> "
                f"{losses[-1]:.2f}); held-out exact match: tuned {tuned:.0%}, "
                f"base {base:.0%} ({len(heldout)} conversations, unseen words)",
                flush=True,
            )
    mean = lambda i: sum(row[i] for row in rows) / len(rows)  # noqa: E731
    print(f"mean over {len(rows)} seeds: tuned {mean(2):.0%}, base {mean(1):.0%}")


if __name__ == "__main__":
    main()
