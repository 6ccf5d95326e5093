"""Google's step arithmetic and the learning rate a run uses, kept free of torch so the
service can use them cheaply (it records the rate on the tuned model before the run)."""

from __future__ import annotations

import math

LORA_LEARNING_RATE = 2e-3
FULL_LEARNING_RATE = 5e-5


def total_steps(n_examples: int, epoch_count: int, batch_size: int) -> int:
    """``ceil(epochs * examples / batch_size)``: batches run on across epoch boundaries."""
    return math.ceil(epoch_count * n_examples / batch_size)


def peak_learning_rate(
    method: str, learning_rate: float | None = None, multiplier: float | None = None
) -> float:
    """The peak learning rate of a run: ``learning_rate`` if given, else the method's default
    (:data:`LORA_LEARNING_RATE` for ``lora``, :data:`FULL_LEARNING_RATE` for ``full``), times
    ``multiplier`` (Google's ``learning_rate_multiplier``; None is 1).

    Rounded to 12 significant digits so that ``2e-3 * 3`` reads 0.006, not 0.006000000000000001.
    """
    base = learning_rate
    if base is None:
        base = LORA_LEARNING_RATE if method == "lora" else FULL_LEARNING_RATE
    return float(f"{base * (1.0 if multiplier is None else multiplier):.12g}")
