"""What the user-facing commands (tune, models, generate) share: where to send calls, how
errors become messages and exit codes, and how results are printed.

Exit codes (documented in the README; scripts rely on them):

    0  success
    1  the tuning failed or was cancelled, a confirmation was declined, or the server
       answered with an unexpected error
    2  bad input or usage: a bad flag, bad training data (the message names the row),
       an id that already exists, an operation in the wrong state
    3  not found: no such tuned model, operation or base model
    4  the server cannot be reached (or did not answer in time)
    5  not allowed: a missing, wrong or revoked API key, or a role that does not allow
       the call (a READER deleting, a non-owner sharing)
  130  interrupted with Ctrl-C (a tuning job keeps running)

Every command calls the SDK (embedded or, with ``--endpoint``, remote); none re-validates.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from .. import errors

OK, FAILED, USAGE, NOT_FOUND, UNREACHABLE, NOT_ALLOWED, INTERRUPTED = 0, 1, 2, 3, 4, 5, 130

_EXIT_BY_ERROR: tuple[tuple[type[errors.TunesmithError], int], ...] = (
    (errors.InvalidArgument, USAGE),
    (errors.AlreadyExists, USAGE),
    (errors.FailedPrecondition, USAGE),
    (errors.NotFound, NOT_FOUND),
    (errors.Unauthenticated, NOT_ALLOWED),
    (errors.PermissionDenied, NOT_ALLOWED),
    (errors.DeadlineExceeded, UNREACHABLE),
)

Endpoint = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        envvar="TUNESMITH_API_ENDPOINT",
        help="A tunesmith server (http://host:port); without it, run embedded here.",
        show_default=False,
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="TUNESMITH_API_KEY",
        help="The server's API key (sent as x-goog-api-key).",
        show_default=False,
    ),
]
JsonOut = Annotated[
    bool, typer.Option("--json", help="Print JSON (the HTTP API's shapes) for scripts.")
]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


def make_client(endpoint: str | None, api_key: str | None):
    """A remote client for ``endpoint``, else the embedded one over TUNESMITH_HOME."""
    if endpoint:
        from ..sdk.remote import RemoteClient

        return RemoteClient(endpoint, api_key=api_key)
    import warnings

    from ..sdk.clients import EmbeddedClient

    # Library deprecation chatter (transformers) is not for the command line's user.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    return EmbeddedClient()


def exit_code(e: errors.TunesmithError) -> int:
    """The documented exit code for a typed error (one table, above)."""
    if isinstance(e, errors.Internal) and _unreachable(e):
        return UNREACHABLE
    for cls, code in _EXIT_BY_ERROR:
        if isinstance(e, cls):
            return code
    return FAILED


def _unreachable(e: BaseException) -> bool:
    import httpx

    return isinstance(e.__cause__, httpx.TransportError)


def fail(message: str, code: int) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn typed errors into a one-line message and their exit code, never a traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except errors.TunesmithError as e:
        fail(e.message, exit_code(e))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(INTERRUPTED) from None
    except Exception as e:  # a bug, not bad input: still one line unless asked for more
        if os.environ.get("TUNESMITH_DEBUG"):
            raise
        fail(
            f"unexpected {type(e).__name__}: {e} (TUNESMITH_DEBUG=1 shows the traceback)",
            FAILED,
        )


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(str(text))


def tuned_model_name(value: str) -> str:
    """``ID`` or ``tunedModels/ID`` into ``tunedModels/ID``."""
    return value if value.startswith("tunedModels/") else f"tunedModels/{value}"


def generation_model_name(value: str) -> str:
    """What ``generate`` accepts: ``tunedModels/ID``, ``models/NAME``, or a bare tuned id."""
    if value.startswith(("tunedModels/", "models/")):
        return value
    return f"tunedModels/{value}"
