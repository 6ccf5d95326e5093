"""Serving tuned models: one base model in memory per process, adapters on top, batched.

``ModelServer`` pulls in torch, so it is imported on first use: ``import tunesmith`` (and so
every CLI command) stays quick, and only a process that generates pays for torch.
"""

from typing import TYPE_CHECKING

from ..records.generation import Delta
from .adapters import DEFAULT_ADAPTER_CACHE, parse_cache_spec
from .params import Sampling
from .stream import Stream

if TYPE_CHECKING:
    from .generator import ModelServer


def __getattr__(name: str):
    if name == "ModelServer":
        from .generator import ModelServer

        return ModelServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_ADAPTER_CACHE",
    "Delta",
    "ModelServer",
    "Sampling",
    "Stream",
    "parse_cache_spec",
]
