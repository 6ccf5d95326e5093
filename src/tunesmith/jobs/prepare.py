"""Prepare base models ahead of the first job, so that no user's first tuning waits for it.

A job on a home that has not converted its base model yet prepares it on its first run (two
seconds or so for the packaged SmolLM2; transformers' path for other architectures takes
longer) and says so. Where even that should not happen (a container image, a server about
to take its first jobs), run this once for the home (``TUNESMITH_HOME``, else
``~/.tunesmith``):

    python -m tunesmith.jobs.prepare [BASE_MODEL ...]     (default: the default base model)

``--shared`` converts packaged models into the installation's shared cache instead (``make
setup`` does it), which every home of this installation reads: a fresh home's first job
then has nothing to convert at all (see :func:`tunesmith.engine.base_models.share`).
``--compile`` also compiles each model's decoder layers as a long run would, into the
installation's cache of compiled code (:func:`tunesmith.engine.models.compile_cache`), so no
worker's first long run compiles them cold (``make setup`` does both).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..engine import base_models
from ..errors import TunesmithError
from ..settings import Settings, get_settings


def prepare(
    settings: Settings, names: list[str], say=print, shared: bool = False, compile: bool = False
) -> list[Path]:
    """Materialise each named base model under ``settings``' home (``shared``: into the
    installation's shared cache), and compile its layers ahead if ``compile``; their
    folders."""
    folders = []
    for name in names or [settings.default_base_model]:
        spec = base_models.resolve(name, settings.default_base_model)
        started, converted = time.monotonic(), list[float | None]()
        if shared:
            folder = base_models.share(spec, converted.append)
        else:
            folder = base_models.materialize(spec, settings.base_models_dir, converted.append)
        if converted:
            say(f"{spec.name}: prepared in {time.monotonic() - started:.1f} s, in {folder}")
        else:
            say(f"{spec.name}: ready in {folder}")
        if compile:
            _compile(spec, folder, say)
        folders.append(folder)
    return folders


def _compile(spec: base_models.BaseModelSpec, folder: Path, say) -> None:
    """Compile ``folder``'s layers ahead; a failure is reported, not raised: jobs then
    compile them when they need to, as without this step."""
    from ..engine import models, recipe

    started = time.monotonic()
    try:
        recipe.compile_ahead(folder, spec.prompt_template)
    except Exception as e:  # an optimisation: setup goes on without it
        say(f"{spec.name}: not compiled ahead ({type(e).__name__}: {e}); jobs compile it")
        return
    say(f"{spec.name}: compiled in {time.monotonic() - started:.1f} s, kept in "
        f"{models.compile_cache()}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tunesmith.jobs.prepare",
        description="Convert base models once, before the first tuning job needs them.",
    )
    parser.add_argument("base_models", nargs="*", help="default: the default base model")
    parser.add_argument(
        "--shared",
        action="store_true",
        help="convert packaged models into this installation's shared cache, for every home",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also compile their layers as a long run would, for every later worker",
    )
    args = parser.parse_args(argv)
    try:
        prepare(get_settings(), args.base_models, shared=args.shared, compile=args.compile)
    except TunesmithError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
