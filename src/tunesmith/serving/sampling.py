"""Choosing the next token per row, and turning a row's tokens into text that stops on time.

Every row of a batch carries its own temperature, top-k and top-p (rows of different requests
share a batch), so the choice is vectorised over rows: greedy rows take the argmax, the others
are scaled, cut to their top-k and their top-p nucleus, then sampled.
"""

from __future__ import annotations

import torch

from .params import Sampling


class RowParams:
    """The sampling parameters of a batch's rows as tensors (one entry per row)."""

    def __init__(self, rows: list[Sampling], indexes: list[int] | None = None):
        """``indexes``: each row's candidate index within its request (seeded rows differ
        by it, so a request's candidates are not all alike)."""
        self.temperature = torch.tensor([s.temperature for s in rows], dtype=torch.float32)
        self.top_k = torch.tensor([s.top_k for s in rows], dtype=torch.long)
        self.top_p = torch.tensor([s.top_p for s in rows], dtype=torch.float32)
        indexes = indexes or [0] * len(rows)
        self.generators = [
            None if s.seed is None else torch.Generator().manual_seed(s.seed + i)
            for s, i in zip(rows, indexes, strict=True)
        ]

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the rows in ``keep`` (finished rows leave the batch)."""
        self.temperature = self.temperature[keep]
        self.top_k = self.top_k[keep]
        self.top_p = self.top_p[keep]
        self.generators = [self.generators[i] for i in keep.tolist()]


def next_tokens(
    logits: torch.Tensor, p: RowParams, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One token id per row of ``logits`` ([rows, vocab])."""
    logits = logits.float()
    out = logits.argmax(-1)
    sampled = (p.temperature > 0).nonzero().squeeze(1)
    if sampled.numel() == 0:
        return out
    scaled = logits[sampled] / p.temperature[sampled, None]
    values, order = scaled.sort(-1, descending=True)
    ranks = torch.arange(values.shape[-1])
    k = p.top_k[sampled, None]
    values = values.masked_fill((k > 0) & (ranks[None] >= k), float("-inf"))  # top_k 0: no cut
    probs = values.softmax(-1)
    # Nucleus: keep the most likely tokens until their mass reaches top_p (the first always).
    before = probs.cumsum(-1) - probs
    probs = probs.masked_fill(before > p.top_p[sampled, None], 0.0)
    choice = torch.multinomial(probs, 1, generator=generator)
    for j, row in enumerate(sampled.tolist()):  # seeded rows draw from their own generator
        own = p.generators[row]
        if own is not None:
            choice[j] = torch.multinomial(probs[j], 1, generator=own)
    out[sampled] = order.gather(1, choice).squeeze(1)
    return out


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
