"""``tunesmith generate MODEL PROMPT``: text from a tuned (or base) model."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ._common import (
    ApiKey,
    Endpoint,
    JsonOut,
    err_console,
    generation_model_name,
    handle_errors,
    make_client,
    print_json,
)


def generate(
    model: Annotated[
        str, typer.Argument(help="A tuned model (ID or tunedModels/ID) or a base model/NAME.")
    ],
    prompt: Annotated[str, typer.Argument(help="The prompt; - reads it from standard input.")],
    temperature: Annotated[
        float | None, typer.Option(help="0 (greedy) to 2; default: the model's.")
    ] = None,
    max_output_tokens: Annotated[int | None, typer.Option(help="At most this many tokens.")] = None,
    candidates: Annotated[
        int | None, typer.Option("--candidates", "-n", help="How many answers.")
    ] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling, 0 to 1.")] = None,
    top_k: Annotated[int | None, typer.Option(help="Sample from the k likeliest tokens.")] = None,
    json_out: JsonOut = False,
    endpoint: Endpoint = None,
    api_key: ApiKey = None,
) -> None:
    """Generate text from MODEL for PROMPT."""
    import tunesmith as ts

    from .. import wire

    if prompt == "-":
        prompt = sys.stdin.read()
    with handle_errors({"candidate_count": "candidates"}):
        completion = ts.generate_text(
            model=generation_model_name(model),
            prompt=prompt,
            temperature=temperature,
            candidate_count=candidates,
            max_output_tokens=max_output_tokens,
            top_p=top_p,
            top_k=top_k,
            client=make_client(endpoint, api_key),
        )
    if json_out:
        print_json(wire.text_response(completion.generation))
        return
    outputs = [c["output"] for c in completion.candidates]
    for i, text in enumerate(outputs, start=1):
        if len(outputs) > 1:
            err_console.print(f"[bold]— candidate {i}[/]")
        _answer(text)


def _answer(text: str) -> None:
    """An answer on stdout; an empty one said on stderr (stdout stays empty, for scripts)."""
    if text.strip():
        typer.echo(text)
    else:
        err_console.print("[dim](empty answer)[/]")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
