"""Serving tuned models: one base model in memory per process, adapters on top."""

from .generator import ModelServer, Sampling

__all__ = ["ModelServer", "Sampling"]
