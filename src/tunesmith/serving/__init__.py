"""Serving tuned models: one base model in memory per process, adapters on top, batched."""

from .adapters import DEFAULT_ADAPTER_CACHE, parse_cache_spec
from .generator import ModelServer
from .sampling import Sampling
from .stream import Delta, Stream

__all__ = [
    "DEFAULT_ADAPTER_CACHE",
    "Delta",
    "ModelServer",
    "Sampling",
    "Stream",
    "parse_cache_spec",
]
