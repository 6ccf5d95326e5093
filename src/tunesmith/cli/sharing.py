"""``tunesmith models share | permissions | unshare | transfer``: who may use a tuned model.

A grantee is a user (an API key's user, the default), a group (``--group``: a group listed on
keys) or everyone (``--everyone``). Only the model's owner may call these; the rules are the
service's, so a bad role or an unknown user is refused with its message (exit 2) and a caller
who is not the owner gets exit 5.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..errors import AlreadyExists, NotFound
from ._common import (
    FAILED,
    ApiKey,
    Endpoint,
    JsonOut,
    err_console,
    escape,
    handle_errors,
    make_client,
    out_console,
    print_json,
    tuned_model_name,
)
from .models import ModelId, Yes, models_app

Grantee = Annotated[
    str | None,
    typer.Argument(help="The user (or with --group, the group); none with --everyone."),
]
Group = Annotated[bool, typer.Option("--group", help="GRANTEE is a group, not a user.")]
Everyone = Annotated[bool, typer.Option("--everyone", help="Everyone with an API key.")]
Role = Annotated[str, typer.Option("--role", help="reader (use it) or writer (also change it).")]


def _kind(group: bool, everyone: bool) -> str:
    return "EVERYONE" if everyone else "GROUP" if group else "USER"


def _who(p) -> str:
    return (
        "everyone"
        if p.grantee_type == "EVERYONE"
        else f"{p.grantee_type.lower()} {p.email_address}"
    )


@models_app.command("share")
def share(
    model: ModelId,
    grantee: Grantee = None,
    role: Role = "reader",
    group: Group = False,
    everyone: Everyone = False,
    json_out: JsonOut = False,
    endpoint: Endpoint = None,
    api_key: ApiKey = None,
) -> None:
    """Let a user, a group or everyone use a tuned model; sharing again changes the role."""
    from ..sdk.permissions import Permissions
    from ..wire.permissions import permission_to_json

    name, kind = tuned_model_name(model), _kind(group, everyone)
    with handle_errors():
        perms = Permissions(name, client=make_client(endpoint, api_key))
        try:
            p = perms.create(role=role, grantee_type=kind, email_address=grantee)
        except AlreadyExists:
            p = _find(perms, grantee, kind).update({"role": role})
    if json_out:
        print_json(permission_to_json(p))
        return
    err_console.print(f"{escape(_who(p))} is now a {p.role} of {name}")


@models_app.command("permissions")
def permissions(
    model: ModelId, json_out: JsonOut = False, endpoint: Endpoint = None, api_key: ApiKey = None
) -> None:
    """List who may use a tuned model: its owner, then each grant."""
    from ..sdk.permissions import Permissions
    from ..wire.permissions import permission_to_json

    name = tuned_model_name(model)
    with handle_errors():
        grants = list(Permissions(name, client=make_client(endpoint, api_key)).list())
    if json_out:
        print_json({"permissions": [permission_to_json(p) for p in grants]})
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "GRANTEE", "ROLE"):
        table.add_column(column, overflow="fold")
    for p in grants:
        table.add_row(p.name.rsplit("/", 1)[-1], escape(_who(p)), p.role)
    out_console.print(table)


@models_app.command("unshare")
def unshare(
    model: ModelId,
    grantee: Grantee = None,
    group: Group = False,
    everyone: Everyone = False,
    endpoint: Endpoint = None,
    api_key: ApiKey = None,
) -> None:
    """Take a grant back (name the grantee as for share, or give the permission's ID)."""
    from ..sdk.permissions import Permissions

    name = tuned_model_name(model)
    with handle_errors():
        p = _find(
            Permissions(name, client=make_client(endpoint, api_key)),
            grantee,
            _kind(group, everyone),
        )
        p.delete()
    err_console.print(f"{escape(_who(p))} may no longer use {name}")


@models_app.command("transfer")
def transfer(
    model: ModelId,
    user: Annotated[str, typer.Argument(help="The user who becomes the owner.")],
    yes: Yes = False,
    endpoint: Endpoint = None,
    api_key: ApiKey = None,
) -> None:
    """Give a tuned model to another user; you keep WRITER (asks first unless --yes)."""
    from ..sdk.permissions import Permissions

    name = tuned_model_name(model)
    with handle_errors():
        perms = Permissions(name, client=make_client(endpoint, api_key))
        list(perms.list(page_size=1))  # a missing model or a non-owner fails before the prompt
        if not yes and not typer.confirm(
            f"Make {user} the owner of {name}? You keep WRITER.", default=False, err=True
        ):
            err_console.print("nothing done")
            raise typer.Exit(FAILED)
        perms.transfer_ownership(user)
    err_console.print(f"{escape(user)} now owns {name}; you are a WRITER of it")


def _find(perms, grantee: str | None, kind: str):
    """The permission of a grantee, or (where a user goes) the one whose ID is ``grantee``."""
    grants = list(perms.list())
    for p in grants:
        if p.grantee_type == kind and (p.email_address or None) == (grantee or None):
            return p
    for p in grants:
        if kind == "USER" and grantee and p.name.endswith(f"/permissions/{grantee}"):
            return p
    who = "everyone" if kind == "EVERYONE" else f"{kind.lower()} {grantee}"
    raise NotFound(f"{perms.parent} is not shared with {who}")


def register(app: typer.Typer) -> None:
    """The commands join ``tunesmith models`` (see :mod:`.models`)."""
