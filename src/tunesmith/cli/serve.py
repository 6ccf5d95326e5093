"""``tunesmith serve``: the HTTP API (and, unless ``--no-worker``, a tuning worker)."""

from __future__ import annotations

import ipaddress
import logging
import socket

import typer


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback one."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            return False
        return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def open_server_refusal(host: str, has_keys: bool) -> str | None:
    """Why the server must not start, or None: no keys means loopback only."""
    if has_keys or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host} without API keys: anyone who can reach it could tune, "
        "read and delete models. Create a key first (tunesmith keys create NAME), or listen "
        "on 127.0.0.1."
    )


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    no_worker: bool = typer.Option(
        False, "--no-worker", help="Do not run tuning jobs here (run `tunesmith worker`)."
    ),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Serve Google's tuning API (TUNESMITH_HOME / TUNESMITH_DATABASE_URL choose the state)."""
    import uvicorn

    from ..api import create_app
    from ..settings import get_settings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    app = create_app(settings, worker=not no_worker)
    refusal = open_server_refusal(host, app.state.keys.any_active())
    if refusal:
        app.state.service.close()
        typer.echo(f"tunesmith: {refusal}", err=True)
        raise typer.Exit(2)
    if not app.state.keys.any_active():
        typer.echo(f"tunesmith: no API keys configured; serving open on {host} only", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
