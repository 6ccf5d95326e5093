"""``tunesmith keys create NAME | list | revoke NAME``: the server's API keys."""

from __future__ import annotations

import typer

from ._common import escape

keys_app = typer.Typer(help="API keys: each tuned model belongs to the key that created it.")


def _keys():
    from ..runtime import Runtime

    return Runtime().service.keys


def _fail(e: Exception) -> None:
    typer.echo(f"tunesmith: {getattr(e, 'message', e)}", err=True)
    raise typer.Exit(1)


@keys_app.command("create")
def create(
    name: str = typer.Argument(..., help="A name to know the key by."),
    user: str = typer.Option(
        None, help="The user the key acts for (owner of what it creates); default: NAME."
    ),
    group: list[str] = typer.Option(
        [], "--group", help="A group the user is in (for GROUP permissions); repeatable."
    ),
) -> None:
    """Create a key and print it (only this once: it is stored hashed)."""
    from ..errors import TunesmithError

    try:
        key, secret = _keys().create(name, user=user, groups=tuple(group))
    except TunesmithError as e:
        _fail(e)
    typer.echo(secret)
    typer.echo(
        f"created key {key.name} ({key.id}) for user {key.user}; it is shown only now", err=True
    )


@keys_app.command("list")
def list_keys() -> None:
    """List keys (never the keys themselves)."""
    from rich.table import Table

    from ._common import out_console

    rows = _keys().list()
    if not rows:
        typer.echo("no keys: the server runs open, on loopback addresses only", err=True)
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "USER", "ID", "STARTS WITH", "CREATED", "STATE"):
        table.add_column(column, no_wrap=column not in ("NAME", "USER"))
    for k in rows:
        state = "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d}"
        table.add_row(
            escape(k.name), escape(k.user), k.id, f"{k.prefix}…", f"{k.created_at:%Y-%m-%d}", state
        )
    out_console.print(table)


@keys_app.command("revoke")
def revoke(name: str = typer.Argument(..., help="The key's name or id.")) -> None:
    """Revoke a key: it stops working at once; its models stay, unreachable by others."""
    from ..errors import TunesmithError

    try:
        key = _keys().revoke(name)
    except TunesmithError as e:
        _fail(e)
    typer.echo(f"revoked {key.name} ({key.id})")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
