"""``tunesmith serve``: the HTTP API (and, unless ``--no-worker``, a tuning worker)."""

from __future__ import annotations

import dataclasses
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
    base_model: list[str] = typer.Option(
        [],
        "--base-model",
        metavar="NAME=SOURCE",
        help="Offer a base model as models/NAME: SOURCE is a model folder, a .gguf file or a "
        "Hugging Face id (repeatable; adds to TUNESMITH_BASE_MODELS). Callers name only the "
        "registered base models and what is offered here.",
    ),
) -> None:
    """Serve Google's tuning API (TUNESMITH_HOME / TUNESMITH_DATABASE_URL choose the state)."""
    import uvicorn

    from ..api import create_app
    from ..errors import TunesmithError
    from ..serving.batcher import map_large_buffers
    from ..settings import get_settings, parse_base_models

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    map_large_buffers()  # this process is the server's own
    try:
        settings = get_settings()
        offered = settings.base_models + parse_base_models(base_model, "--base-model")
        settings = dataclasses.replace(settings, base_models=offered)
        app = create_app(settings, worker=not no_worker)
    except (ValueError, TunesmithError) as e:
        typer.echo(f"tunesmith: {getattr(e, 'message', None) or e}", err=True)
        raise typer.Exit(2) from None
    refusal = open_server_refusal(host, app.state.service.keys.any_active())
    if refusal:
        app.state.runtime.close()
        typer.echo(f"tunesmith: {refusal}", err=True)
        raise typer.Exit(2)
    if not app.state.service.keys.any_active():
        typer.echo(f"tunesmith: no API keys configured; serving open on {host} only", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
