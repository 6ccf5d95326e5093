"""``tunesmith models import ADAPTER_DIR --base BASE --id ID``: a peft LoRA adapter trained
elsewhere, registered as a tuned model (checked against the base's layer shapes first)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    USAGE,
    JsonOut,
    err_console,
    escape,
    fail,
    handle_errors,
    make_client,
    print_json,
)
from .models import models_app


def import_adapter(
    adapter_dir: Annotated[
        Path,
        typer.Argument(
            help="A peft LoRA adapter folder (adapter_config.json and adapter_model.safetensors)."
        ),
    ],
    base: Annotated[
        str,
        typer.Option(
            "--base",
            help="The base model it was trained on: models/NAME, a "
            "local folder, a .gguf file or a Hugging Face id.",
        ),
    ],
    id: Annotated[str, typer.Option("--id", help="The new tuned model's id.")],
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="A name to show.")
    ] = None,
    json_out: JsonOut = False,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", envvar="TUNESMITH_API_ENDPOINT", hidden=True)
    ] = None,
) -> None:
    """Register a peft LoRA adapter trained elsewhere as a tuned model (served like any other)."""
    from .. import wire

    if endpoint:
        fail(
            "models import reads the adapter folder on this machine: run it where the server's "
            "TUNESMITH_HOME is (unset TUNESMITH_API_ENDPOINT / --endpoint)",
            USAGE,
        )
    with handle_errors():
        client = make_client(None, None)
        model = client.service.imports.import_adapter(adapter_dir, base, id, display_name)
    if json_out:
        print_json(wire.tuned_model_to_json(model))
        return
    err_console.print(
        f"imported {escape(model.name)} over {escape(model.base_model)}; try it with: "
        f"tunesmith generate {escape(model.id)} 'your prompt'"
    )


def register(app: typer.Typer) -> None:
    models_app.command("import")(import_adapter)
