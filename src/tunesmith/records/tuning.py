"""A request to tune a model, as every way in (SDK, Google's and OpenAI's routes, the CLI) makes it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..types import TuningExample
from .conversations import Conversation


@dataclasses.dataclass
class CreateTunedModelRequest:
    source_model: str
    examples: Sequence[TuningExample | Conversation]
    id: str | None = None
    display_name: str | None = None
    description: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    epoch_count: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    learning_rate_multiplier: float | None = None
    method: str = "lora"
    validation_examples: Sequence[TuningExample | Conversation] | None = None
    """tunesmith's own: held-out examples whose mean loss is recorded at every epoch's end."""
    seed: int | None = None
    """The run's seed (OpenAI's ``seed``); None: the worker's setting."""
