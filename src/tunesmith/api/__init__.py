"""The HTTP API: Google's Generative Language tuning routes over the service layer."""

from .app import create_app

__all__ = ["create_app"]
