"""``tunesmith tune DATA_FILE``: start a tuning and follow it with a live progress bar.

Ctrl-C leaves the progress bar, not the job: the run goes on in its worker (or on the
server), and ``tunesmith models watch ID`` picks the bar up again.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn

from .. import errors
from ..sdk.clients import keep_running
from ..types import Phase, as_utc
from ._common import (
    FAILED,
    INTERRUPTED,
    OK,
    ApiKey,
    Endpoint,
    JsonOut,
    err_console,
    escape,
    handle_errors,
    make_client,
    plural,
    print_json,
)

POLL_SECONDS = 0.5
KEEP_RUNNING_SECONDS = 5.0
# Google's own model names resolve to the configured default base model (the server's
# TUNESMITH_DEFAULT_BASE_MODEL when remote), so this is "whatever the default is".
DEFAULT_BASE_ALIAS = "models/text-bison-001"
# The SDK's fields that the flags below name otherwise (errors name the flag: --epochs).
FLAGS = {
    "source_model": "base_model",
    "base_model": "base_model",
    "tuned_model_id": "id",
    "epoch_count": "epochs",
}


def tune(
    data_file: Annotated[
        str,
        typer.Argument(
            help="Training data: a CSV, JSON or JSONL file (or an http(s) URL). JSONL rows may "
            "be text_input/output examples, Vertex's Gemini rows (contents, "
            "systemInstruction) or OpenAI's chat rows (messages); each row's shape is detected."
        ),
    ],
    base_model: Annotated[
        str | None,
        typer.Option(
            "--base-model",
            "-m",
            help="Base model (models/NAME, a local folder or .gguf file, a Hugging Face id; "
            "against a server, one it offers) or tunedModels/ID to continue tuning. Default: "
            "the configured default.",
            show_default=False,
        ),
    ] = None,
    id: Annotated[
        str | None, typer.Option("--id", help="The tuned model's id (default: from the name).")
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="A human-readable name.")] = None,
    description: Annotated[str | None, typer.Option(help="A longer description.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default 5).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default 4).")] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Learning rate (default 2e-3 for LoRA).")
    ] = None,
    input_key: Annotated[str, typer.Option(help="Column / key of the inputs.")] = "text_input",
    output_key: Annotated[str, typer.Option(help="Column / key of the outputs.")] = "output",
    method: Annotated[str, typer.Option(help="lora or full.")] = "lora",
    last_turn_only: Annotated[
        bool,
        typer.Option(
            "--last-turn-only",
            help="Conversations learn from their last model turn only (default: every model "
            "turn not weighted 0).",
        ),
    ] = False,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Start the job and return at once.")
    ] = False,
    json_out: JsonOut = False,
    endpoint: Endpoint = None,
    api_key: ApiKey = None,
) -> None:
    """Tune a model on DATA_FILE and show its progress (Ctrl-C leaves; the job goes on)."""
    import tunesmith as ts

    with handle_errors(FLAGS):
        client = make_client(endpoint, api_key)
        op = ts.create_tuned_model(
            base_model or DEFAULT_BASE_ALIAS,
            data_file,
            id=id,
            display_name=display_name,
            description=description,
            epoch_count=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            input_key=input_key,
            output_key=output_key,
            method=method,
            last_turn_only=last_turn_only,
            client=client,
        )
        model_id = op.metadata.tuned_model.removeprefix("tunedModels/")
        if detach:
            if json_out:
                _print_operation(op)
            else:
                err_console.print(
                    f"started [bold]{op.metadata.tuned_model}[/] "
                    f"({plural(op.metadata.total_steps, 'step')})\n"
                    f"  follow:  tunesmith models watch {model_id}\n"
                    f"  cancel:  tunesmith models cancel {model_id}"
                )
                typer.echo(op.name)
            raise typer.Exit(OK)
        err_console.print(
            f"tuning [bold]{op.metadata.tuned_model}[/] "
            f"({plural(op.metadata.total_steps, 'step')}; Ctrl-C leaves, the job goes on)"
        )
        code = follow(op, client, json_out=json_out)
    raise typer.Exit(code)


def follow(op, client, *, json_out: bool = False, started: dt.datetime | None = None) -> int:
    """Show ``op``'s progress until it is done; the exit code for how it ended."""
    started = started or dt.datetime.now(dt.UTC)
    model_id = op.metadata.tuned_model.removeprefix("tunedModels/")
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}  loss [cyan]{task.fields[loss]}[/]"),
        TextColumn("elapsed {task.fields[elapsed]}  ETA {task.fields[eta]}"),
        console=err_console,
    )
    last_nudge = 0.0
    try:
        with progress:
            task = progress.add_task(
                "waiting", total=None, count="", loss="-", elapsed="0:00", eta="-"
            )
            while True:
                done = op.done()
                meta = op.metadata
                snaps = meta.snapshots
                progress.update(
                    task,
                    **_progress_line(meta, done),
                    loss=f"{snaps[-1].mean_loss:.4f}" if snaps else "-",
                    elapsed=_clock((dt.datetime.now(dt.UTC) - as_utc(started)).total_seconds()),
                    eta="0:00" if done else _eta(meta),
                )
                if done:
                    break
                if time.monotonic() - last_nudge > KEEP_RUNNING_SECONDS:
                    keep_running(client)
                    last_nudge = time.monotonic()
                op.update(wait=POLL_SECONDS)
    except KeyboardInterrupt:
        err_console.print(
            f"left the progress bar; tunedModels/{model_id} keeps tuning.\n"
            f"  follow:  tunesmith models watch {model_id}\n"
            f"  cancel:  tunesmith models cancel {model_id}"
        )
        if json_out:
            _print_operation(op)
        return INTERRUPTED
    return report_outcome(op, json_out=json_out)


def _progress_line(meta, done: bool) -> dict:
    """What the bar shows: the base model's one-time preparation in percent while it lasts,
    else the steps; the description says what the run does (its phase)."""
    phase = None if done else meta.phase
    if phase is not None and phase.name == Phase.PREPARING_BASE_MODEL:
        if phase.progress is None:  # not measured: a pulsing bar
            return dict(description=phase.description, total=None, completed=0, count="")
        pct = round(100 * phase.progress)
        return dict(description=phase.description, total=100, completed=pct, count=f"{pct}%")
    if done:
        description = "done"
    elif phase is not None:
        description = phase.description
    else:  # a server that does not say its phase
        description = "tuning" if meta.snapshots else "waiting"
    total = meta.total_steps
    return dict(
        description=description,
        total=total or None,
        completed=meta.completed_steps,
        count=f"{meta.completed_steps}/{total} steps",
    )


def report_outcome(op, *, json_out: bool) -> int:
    """Print how a finished operation ended; 0 when its model is ACTIVE, else 1."""
    error = op.exception()
    if json_out:
        _print_operation(op)
    model = op.metadata.tuned_model
    if error is not None:
        what = "was cancelled" if isinstance(error, errors.Cancelled) else "failed"
        err_console.print(f"[bold red]{model} {what}:[/] {escape(error.message)}")
        return FAILED
    if not json_out:
        snaps = op.metadata.snapshots
        loss = f", final loss {snaps[-1].mean_loss:.4f}" if snaps else ""
        model_id = model.removeprefix("tunedModels/")
        steps = plural(op.metadata.completed_steps, "step")
        err_console.print(
            f"[bold green]{model} is ACTIVE[/] ({steps}{loss})\n"
            f'  try:  tunesmith generate {model_id} "your prompt"'
        )
        typer.echo(model)
    return OK


def _print_operation(op) -> None:
    from .. import wire

    print_json(wire.operation_to_json(op.operation))


def _eta(meta) -> str:
    """Time left, from the pace of the snapshots so far (unknown before two of them that
    carry a compute time: a server may leave ``computeTime`` out)."""
    snaps = [s for s in meta.snapshots if s.compute_time is not None]
    if len(snaps) < 2 or snaps[-1].step <= snaps[0].step:
        return "-"
    seconds = (snaps[-1].compute_time - snaps[0].compute_time).total_seconds()
    per_step = seconds / (snaps[-1].step - snaps[0].step)
    return _clock(per_step * max(0, meta.total_steps - meta.completed_steps))


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
