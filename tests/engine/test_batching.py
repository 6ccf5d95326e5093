"""Length grouping stays inside Google's step contract."""

from __future__ import annotations

import math
import random

import pytest

from tunesmith.engine.batching import plan_batches
from tunesmith.engine.recipe import total_steps

CASES = [(15, 3, 2), (300, 3, 4), (10, 5, 3), (7, 2, 8), (1, 3, 1), (64, 2, 64)]


def _lengths(n: int, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(5, 60) for _ in range(n)]


@pytest.mark.parametrize(("n", "epochs", "batch"), CASES)
def test_grouping_keeps_step_count_sizes_and_epochs(n, epochs, batch):
    plain = plan_batches(n, epochs, batch, seed=0)
    grouped = plan_batches(n, epochs, batch, seed=0, lengths=_lengths(n))
    assert len(grouped) == total_steps(n, epochs, batch) == math.ceil(epochs * n / batch)
    assert [len(ix) for ix, _ in grouped] == [len(ix) for ix, _ in plain]
    assert [ep for _, ep in grouped] == [ep for _, ep in plain]
    assert grouped[-1][1] == epochs


def test_the_seed_job_is_23_steps_with_googles_epoch_numbers():
    plan = plan_batches(15, 3, 2, seed=0, lengths=_lengths(15))
    assert len(plan) == 23
    # Step 8 ends at example 16 of the stream: one epoch done. Step 23 ends the third.
    assert [ep for _, ep in plan][6:9] == [0, 1, 1] and plan[-1] == (plan[-1][0], 3)


@pytest.mark.parametrize(("n", "epochs", "batch"), CASES)
def test_every_example_exactly_once_per_epoch(n, epochs, batch):
    plan = plan_batches(n, epochs, batch, seed=3, lengths=_lengths(n))
    stream = [i for ix, _ in plan for i in ix]
    for e in range(epochs):
        assert sorted(stream[e * n : (e + 1) * n]) == list(range(n))


def test_batches_inside_an_epoch_hold_similar_lengths():
    n, batch = 300, 4
    lengths = _lengths(n)
    waste = {}
    for grouped in (False, True):
        plan = plan_batches(n, 3, batch, seed=0, lengths=lengths if grouped else None)
        pad = sum(len(ix) * max(lengths[i] for i in ix) for ix, _ in plan)
        waste[grouped] = pad / sum(lengths[i] for ix, _ in plan for i in ix) - 1
    assert waste[True] < 0.05 < waste[False]


def test_plans_repeat_with_a_seed_and_differ_between_seeds_and_epochs():
    lengths = _lengths(40)
    a = plan_batches(40, 3, 4, seed=7, lengths=lengths)
    assert a == plan_batches(40, 3, 4, seed=7, lengths=lengths)
    assert a != plan_batches(40, 3, 4, seed=8, lengths=lengths)
    epochs = [[ix for ix, _ in a[e * 10 : (e + 1) * 10]] for e in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]  # the batch order is reshuffled each epoch


def test_without_lengths_the_plan_is_the_plain_seeded_stream():
    import torch

    gen = torch.Generator().manual_seed(5)
    stream = [i for _ in range(2) for i in torch.randperm(6, generator=gen).tolist()]
    plan = plan_batches(6, 2, 4, seed=5)
    assert [i for ix, _ in plan for i in ix] == stream
