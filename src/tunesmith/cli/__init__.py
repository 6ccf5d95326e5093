"""The ``tunesmith`` command: a typer app, each command group in its own module.

To add a command group, write a module with a ``register(app)`` function and list it in
``_MODULES``.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from ._common import RawArgsGroup

app = typer.Typer(
    name="tunesmith",
    help="Tune and serve open-weight models with Google's tuning API, on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    cls=RawArgsGroup,
)

_MODULES = (
    "serve",
    "worker",
    "keys",
    "tune",
    "models",
    "sharing",
    "generate",
    "export",
    "importing",
)

for _name in _MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def _print_version(value: bool) -> None:
    if value:
        from ..version import __version__

        typer.echo(f"tunesmith {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Tune and serve open-weight models with Google's tuning API, on your own machine."""


def main() -> None:
    app()


__all__ = ["app", "main"]
