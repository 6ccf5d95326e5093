"""The run's batches: Google's step count, with examples of similar length batched together.

Google's contract (kept exactly): the examples of all epochs form one stream, each epoch in
its own seeded order, cut into batches of ``batch_size``; so ``total_steps = ceil(epochs * N /
batch_size)``, a batch may span an epoch boundary, and a step's ``epoch`` is the number of
epochs completed when it ends.

Length grouping happens *inside each epoch's stretch of the stream*: the epoch's examples are
ranked by token count (ties keep the epoch's random order), cut into pieces whose sizes are
exactly the pieces the run's batches take from this epoch, and the pieces are laid out in a
seeded random order. Every example still appears exactly once per epoch, every step still
covers the same number of examples and ends at the same epoch count, and a batch pads only to
its own longest example, which then differs little from its shortest. (Short examples run
packed, without padding, see :func:`.models.pack_batch`, and keep the plain seeded order,
whose batches mix examples of every kind: :func:`.recipe._plan`; grouping serves the batches
that pad: long examples, or attention other than the engine's row-wise one.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .prompting import IGNORE as IGNORE  # the one "not learned from" label


def plan_batches(
    n: int,
    epoch_count: int,
    batch_size: int,
    seed: int,
    lengths: Sequence[int] | None = None,
) -> list[tuple[list[int], int]]:
    """The run's batches as (example indices, epochs completed after this batch).

    With ``lengths`` (token counts per example) each epoch is length-grouped as described
    in the module docstring; without, each epoch is a plain seeded permutation.
    """
    gen = torch.Generator().manual_seed(seed)
    orders = [torch.randperm(n, generator=gen).tolist() for _ in range(epoch_count)]
    if lengths is not None:
        orders = [
            _group_by_length(order, e * n, batch_size, lengths, gen)
            for e, order in enumerate(orders)
        ]
    stream = [i for order in orders for i in order]
    batches = []
    for start in range(0, len(stream), batch_size):
        end = min(start + batch_size, len(stream))
        batches.append((stream[start:end], end // n))
    return batches


def _group_by_length(
    order: list[int], offset: int, batch_size: int, lengths: Sequence[int], gen: torch.Generator
) -> list[int]:
    """One epoch's order, rearranged so that each of its batch pieces holds similar lengths.

    ``offset`` is where this epoch starts in the run's stream; batch boundaries fall at
    multiples of ``batch_size`` in the stream, so the epoch's first and last pieces may be
    partial (their batches are shared with the neighbouring epochs).
    """
    n = len(order)
    first_cut = -(-offset // batch_size) * batch_size  # first boundary at or after offset
    inner = [c - offset for c in range(first_cut, offset + n, batch_size) if c > offset]
    bounds = [0, *inner, n]
    sizes = [b - a for a, b in zip(bounds, bounds[1:], strict=False)]
    ranked = sorted(order, key=lambda i: lengths[i])  # stable: ties stay in random order
    pieces: list[list[int]] = [[] for _ in sizes]
    taken = 0
    for p in torch.randperm(len(sizes), generator=gen).tolist():
        pieces[p] = ranked[taken : taken + sizes[p]]
        taken += sizes[p]
    return [i for piece in pieces for i in piece]


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int):
    """Right-padded ``(input_ids, labels, attention_mask)``; padding is never a target."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (i, lab) in enumerate(rows):
        ids[r, : len(i)] = torch.tensor(i)
        labels[r, : len(lab)] = torch.tensor(lab)
        mask[r, : len(i)] = 1
    return ids, labels, mask
