"""A request's resolved sampling parameters (torch-free: the service builds them)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Resolved sampling parameters (the service has filled in every default)."""

    temperature: float
    top_p: float
    top_k: int
    candidate_count: int
    max_output_tokens: int
    stop_sequences: tuple[str, ...] = ()
    seed: int | None = None
    """Sampled rows draw from their own generator seeded with this (plus the candidate's
    index), so the same request on the same weights samples the same tokens; None: the
    process's shared randomness."""
