"""Choosing the next token per row, and turning a row's tokens into text that stops on time.

Every row of a batch carries its own temperature, top-k and top-p (rows of different requests
share a batch): greedy rows take the argmax, the others are scaled, cut to their top-k and
their top-p nucleus, then sampled. The choice is made in numpy, not torch: both engines hand
over their logits as arrays, and a torch op here would wake torch's OpenMP threads, whose
spinning takes the cores llama.cpp's own threads decode on.
"""

from __future__ import annotations

import numpy as np

from .params import Sampling


class RowParams:
    """The sampling parameters of a batch's rows (one entry per row)."""

    def __init__(self, rows: list[Sampling], indexes: list[int] | None = None):
        """``indexes``: each row's candidate index within its request (seeded rows differ
        by it, so a request's candidates are not all alike)."""
        self.rows = list(rows)
        indexes = indexes or [0] * len(rows)
        self.generators = [
            np.random.default_rng(s.seed + i) if s.seed is not None else _UNSEEDED
            for s, i in zip(rows, indexes, strict=True)
        ]

    def select(self, keep: list[int]) -> None:
        """Keep only the rows in ``keep`` (finished rows leave the batch)."""
        self.rows = [self.rows[i] for i in keep]
        self.generators = [self.generators[i] for i in keep]


# Unseeded rows draw from one generator (only the scheduler's thread samples).
_UNSEEDED = np.random.default_rng()


def next_tokens(logits: np.ndarray, p: RowParams) -> list[int]:
    """One token id per row of ``logits`` ([rows, vocab])."""
    out = logits.argmax(-1).tolist()
    for row, s in enumerate(p.rows):
        if s.temperature > 0:
            out[row] = _sample(logits[row], s, p.generators[row])
    return out


def _sample(logits: np.ndarray, s: Sampling, rng: np.random.Generator) -> int:
    scaled = logits.astype(np.float64) / s.temperature
    if 0 < s.top_k < len(scaled):  # top_k 0: no cut
        top = np.argpartition(-scaled, s.top_k - 1)[: s.top_k]
        order = top[np.argsort(-scaled[top], kind="stable")]
    else:
        order = np.argsort(-scaled, kind="stable")
    probs = np.exp(scaled[order] - scaled[order[0]])
    probs /= probs.sum()
    # Nucleus: keep the most likely tokens until their mass reaches top_p (the first always).
    mass = np.cumsum(probs)
    kept = max(1, int(np.count_nonzero(mass - probs <= s.top_p)))
    mass = mass[:kept]
    pick = int(np.searchsorted(mass, rng.random() * mass[-1], side="right"))
    return int(order[min(pick, kept - 1)])


class TextTracker:
    """One candidate's tokens so far, its text, and how much of it is safe to stream.

    Text that could still turn into a stop sequence is held back, and so is an incomplete
    UTF-8 character, so what has been streamed is always a prefix of the final answer.
    """

    def __init__(self, decode, stops: tuple[str, ...], max_tokens: int, eos_ids: set[int]):
        self._decode = decode
        self.stops = stops
        self.max_tokens = max_tokens
        self.eos_ids = eos_ids
        self.tokens: list[int] = []
        self.text = ""
        self.emitted = 0
        self.finish: str | None = None

    def push(self, token: int) -> str:
        """Add a token; returns the text that became safe to stream."""
        if token in self.eos_ids:
            self.finish = "STOP"
            return self._flush(len(self.text))
        self.tokens.append(token)
        self.text = self._decode(self.tokens)
        cut = _first_stop(self.text, self.stops)
        if cut is not None:
            self.finish, self.text = "STOP", self.text[:cut]
            return self._flush(cut)
        if len(self.tokens) >= self.max_tokens:
            self.finish = "MAX_TOKENS"
            return self._flush(len(self.text))
        safe = len(self.text) - _held_back(self.text, self.stops)
        return self._flush(safe)

    def cancel(self) -> None:
        self.finish = self.finish or "STOP"

    def _flush(self, end: int) -> str:
        if end <= self.emitted:
            return ""
        delta = self.text[self.emitted : end]
        self.emitted = end
        return delta


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters must wait: a partial character or a stop's beginning."""
    held = len(text) - len(text.rstrip("\ufffd"))
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                held = max(held, n)
                break
    return held
