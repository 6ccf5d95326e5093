"""Helpers of the OpenAI dialect's tests (a module of its own: conftest is not importable by
name from every test directory)."""

from __future__ import annotations

from pathlib import Path

from tunesmith_server import OFFERED_NAME

BASE = f"models/{OFFERED_NAME}"


def make_settings(home: Path, tiny_model_dir: Path, **overrides):
    from tunesmith.settings import get_settings

    return get_settings(
        home=home,
        default_base_model=BASE,
        base_models=((OFFERED_NAME, str(tiny_model_dir)),),
        **overrides,
    )
