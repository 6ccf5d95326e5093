"""Google's step arithmetic, kept free of torch so the service can use it cheaply."""

from __future__ import annotations

import math


def total_steps(n_examples: int, epoch_count: int, batch_size: int) -> int:
    """``ceil(epochs * examples / batch_size)``: batches run on across epoch boundaries."""
    return math.ceil(epoch_count * n_examples / batch_size)
