"""The package version, at the bottom so that any layer may name it (the root package imports the SDK)."""

__version__ = "0.1.0"
