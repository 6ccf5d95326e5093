"""``tunesmith models list | show | watch | delete | cancel``: the tuned models (sharing them:
:mod:`.sharing`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from ..types import TunedModel, TunedModelState, as_utc
from ._common import (
    FAILED,
    USAGE,
    ApiKey,
    Endpoint,
    JsonOut,
    err_console,
    escape,
    fail,
    handle_errors,
    make_client,
    out_console,
    print_json,
    tuned_model_name,
)
from ._table import Column, print_table

models_app = typer.Typer(
    help="Tuned models: list, show, watch, delete, cancel; share, permissions, unshare, transfer."
)

ModelId = Annotated[str, typer.Argument(help="The tuned model: ID or tunedModels/ID.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
SPARKS = "▁▂▃▄▅▆▇█"
# In the order shown and needed: NAME, BASE MODEL and CREATED are left out when they do not fit.
LIST_COLUMNS = (
    Column("ID", keep=True),
    Column("NAME", wrap=True),
    Column("STATE", keep=True),
    Column("PROGRESS", keep=True),
    Column("BASE MODEL"),
    Column("CREATED"),
)


@models_app.command("list")
def list_models(
    json_out: JsonOut = False, endpoint: Endpoint = None, api_key: ApiKey = None
) -> None:
    """List tuned models with their state and progress."""
    import tunesmith as ts

    from .. import wire

    with handle_errors():
        client = make_client(endpoint, api_key)
        models = list(ts.list_tuned_models(client=client))
        if json_out:
            print_json({"tunedModels": [wire.tuned_model_to_json(m) for m in models]})
            return
        ops = _latest_operations(ts.list_operations(client=client))
    if not models:
        err_console.print("no tuned models yet; start one with: tunesmith tune DATA_FILE")
        return
    rows = [
        (
            m.id,
            m.display_name,
            _state(m, ops.get(m.name)),
            _progress(ops.get(m.name)),
            m.base_model.removeprefix("models/"),
            _when(m.create_time)[:16],  # to the minute
        )
        for m in models
    ]
    print_table(LIST_COLUMNS, rows, more="--json or `models show ID` show everything")


@models_app.command("show")
def show(
    model: ModelId, json_out: JsonOut = False, endpoint: Endpoint = None, api_key: ApiKey = None
) -> None:
    """Show a tuned model: state, hyperparameters, timings and its loss curve."""
    import tunesmith as ts

    from .. import wire

    with handle_errors():
        client = make_client(endpoint, api_key)
        m = ts.get_tuned_model(tuned_model_name(model), client=client)
        op = _latest(list(ts.list_operations(m.name, client=client)))
    if json_out:
        print_json(
            {
                "tunedModel": wire.tuned_model_to_json(m),
                "operation": wire.operation_to_json(op.operation) if op else None,
            }
        )
        return
    task, hp = m.tuning_task, m.tuning_task.hyperparameters
    snaps = op.metadata.snapshots if op else task.snapshots
    rows = [
        ("name", m.name),
        ("display name", m.display_name),
        ("description", m.description),
        ("state", _state(m, op)),
        ("progress", _progress(op)),
        ("base model", m.base_model),
        ("tuned from", m.tuned_model_source or ""),
        ("operation", op.name if op else ""),
        ("epochs", _str(hp.epoch_count)),
        ("batch size", _str(hp.batch_size)),
        ("learning rate", _str(hp.learning_rate)),
        ("created", _when(m.create_time)),
        ("started", _when(task.start_time)),
        ("completed", _when(task.complete_time)),
        ("took", _took(task.start_time, task.complete_time)),
        ("loss", _loss_line(snaps)),
        ("error", _error(m, op)),
    ]
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        if value:
            table.add_row(key, escape(value))
    out_console.print(table)


@models_app.command("watch")
def watch(
    model: ModelId, json_out: JsonOut = False, endpoint: Endpoint = None, api_key: ApiKey = None
) -> None:
    """Follow a tuning's progress bar again (Ctrl-C leaves; the job goes on)."""
    import tunesmith as ts

    from .tune import follow, report_outcome

    with handle_errors():
        client = make_client(endpoint, api_key)
        m = ts.get_tuned_model(tuned_model_name(model), client=client)
        op = _latest(list(ts.list_operations(m.name, client=client)))
        if op is None:
            fail(f"{m.name} has no tuning operation", USAGE)
        if op.operation.done:
            code = report_outcome(op, json_out=json_out)
        else:
            code = follow(op, client, json_out=json_out, started=m.create_time)
    raise typer.Exit(code)


@models_app.command("delete")
def delete(
    model: ModelId, yes: Yes = False, endpoint: Endpoint = None, api_key: ApiKey = None
) -> None:
    """Delete a tuned model and its weights (asks first unless --yes)."""
    import tunesmith as ts

    name = tuned_model_name(model)
    with handle_errors():
        client = make_client(endpoint, api_key)
        ts.get_tuned_model(name, client=client)  # a missing model is "not found", not a prompt
        _confirm(yes, f"Delete {name} and its weights?")
        ts.delete_tuned_model(name, client=client)
    err_console.print(f"deleted {name}")


@models_app.command("cancel")
def cancel(
    model: ModelId, yes: Yes = False, endpoint: Endpoint = None, api_key: ApiKey = None
) -> None:
    """Cancel a running tuning (asks first unless --yes)."""
    import tunesmith as ts

    name = tuned_model_name(model)
    with handle_errors():
        client = make_client(endpoint, api_key)
        m = ts.get_tuned_model(name, client=client)
        op = _latest(list(ts.list_operations(name, client=client)))
        if op is None or op.operation.done:
            fail(f"{name} is not tuning (state {m.state.name}); nothing to cancel", USAGE)
        _confirm(yes, f"Cancel the tuning of {name}?")
        op.cancel()
    err_console.print(f"cancelled the tuning of {name}")


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not typer.confirm(question, default=False, err=True):
        err_console.print("nothing done")
        raise typer.Exit(FAILED)


def _latest_operations(ops) -> dict:
    """The latest operation of each tuned model."""
    by_model: dict = {}
    for op in ops:
        by_model.setdefault(op.metadata.tuned_model, []).append(op)
    return {name: _latest(group) for name, group in by_model.items()}


def _latest(ops: list):
    """The running operation if there is one, else the last."""
    running = [op for op in ops if not op.operation.done]
    return (running or ops or [None])[-1]


def _state(m: TunedModel, op) -> str:
    if op is not None and op.operation.error is not None and op.operation.error.code == 1:
        return "CANCELLED"
    return m.state.name


def _progress(op) -> str:
    if op is None:
        return ""
    meta = op.metadata
    if op.operation.done:
        return f"{meta.completed_steps}/{meta.total_steps}"
    return f"{meta.completed_steps}/{meta.total_steps} ({meta.completed_percent:.0f}%)"


def _error(m: TunedModel, op) -> str:
    if op is not None and op.operation.error is not None:
        return op.operation.error.message
    return m.error or "" if m.state == TunedModelState.FAILED else ""


def _loss_line(snaps) -> str:
    if not snaps:
        return ""
    losses = [s.mean_loss for s in snaps]
    return f"{losses[0]:.4f} → {losses[-1]:.4f}  {sparkline(losses)}"


def sparkline(values: list[float], width: int = 40) -> str:
    """A one-line plot of ``values`` (down-sampled to ``width`` points)."""
    if len(values) > width:
        step = len(values) / width
        values = [values[int(i * step)] for i in range(width)]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return "".join(SPARKS[int((v - lo) / span * (len(SPARKS) - 1))] for v in values)


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return as_utc(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _took(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if start is None or end is None:
        return ""
    return f"{(end - start).total_seconds():.1f} s"


def _str(value) -> str:
    return "" if value is None else str(value)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
