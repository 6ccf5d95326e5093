"""The sampler's choice per row: the distribution a request's parameters ask for."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from tunesmith.serving import Sampling
from tunesmith.serving.sampling import RowParams, next_tokens

PROBS = [0.5, 0.3, 0.15, 0.05]
LOGITS = np.log(np.array([PROBS], dtype=np.float32))


def sampling(**params) -> Sampling:
    defaults = dict(temperature=1.0, top_p=1.0, top_k=0, candidate_count=1, max_output_tokens=8)
    return Sampling(**{**defaults, **params})


def draws(n: int, **params) -> Counter:
    s = sampling(**{"seed": 7, **params})
    rows = RowParams([s] * n, list(range(n)))  # n candidates: n seeded draws
    return Counter(next_tokens(np.repeat(LOGITS, n, axis=0), rows))


def test_draws_follow_the_probabilities():
    seen = draws(4000)
    for token, p in enumerate(PROBS):
        assert abs(seen[token] / 4000 - p) < 0.03, seen


def test_top_p_keeps_the_nucleus_and_renormalises():
    seen = draws(4000, top_p=0.7)  # 0.5 + 0.3 reaches 0.7: tokens 0 and 1 only
    assert set(seen) == {0, 1}
    assert abs(seen[0] / 4000 - 0.5 / 0.8) < 0.03, seen


def test_top_k_cuts_to_the_most_likely():
    assert set(draws(2000, top_k=3)) == {0, 1, 2}
    assert set(draws(200, top_k=1)) == {0}


def test_low_temperature_sharpens_and_zero_is_greedy():
    cold = draws(2000, temperature=0.25)  # 0.5^4 against 0.3^4: token 0 ~ 88%
    expected = PROBS[0] ** 4 / sum(p**4 for p in PROBS)
    assert abs(cold[0] / 2000 - expected) < 0.03, cold
    assert draws(50, temperature=0.0) == Counter({0: 50})


def test_a_seed_repeats_and_rows_of_a_batch_keep_their_own_parameters():
    assert draws(300) == draws(300)
    greedy, sampled = sampling(temperature=0.0), sampling(seed=1)
    logits = np.log(np.array([[0.1, 0.9], [0.9, 0.1], [0.5, 0.5]], dtype=np.float32))
    rows = RowParams([greedy, greedy, sampled])
    assert next_tokens(logits, rows)[:2] == [1, 0]
    rows.select([1])  # the others finished
    assert next_tokens(logits[1:2], rows) == [0]


def test_every_probability_is_finite_for_extreme_logits():
    logits = np.array([[1e4, -1e4, 0.0, -math.inf]], dtype=np.float32)
    s = sampling(temperature=0.01, top_p=0.95, seed=3)
    assert next_tokens(logits, RowParams([s])) == [0]
