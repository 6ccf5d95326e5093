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
