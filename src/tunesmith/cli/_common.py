"""What the user-facing commands (tune, models, generate) share: where to send calls, how
errors become messages and exit codes, and how results are printed.

The exit codes are :class:`ExitCode`, one table with each code's meaning; docs/cli.md prints
the same table and ``tests/test_reference_tables.py`` holds the two equal. Scripts rely on them.

Every command calls the SDK (embedded or, with ``--endpoint``, remote); none re-validates. An
error names the flag the user typed (``-n``, ``--base-model``), not the SDK parameter behind it.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup, TyperOption

from .. import errors

DEBUG_ENV = "TUNESMITH_DEBUG"
"""Set (to anything) to see a traceback instead of the one-line message of an unexpected error."""


class ExitCode(enum.IntEnum):
    """How a command ended, for scripts: each code with its meaning (docs/cli.md's table)."""

    meaning: str

    def __new__(cls, code: int, meaning: str):
        member = int.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member

    OK = 0, "done (for `tune`: the model is ACTIVE)"
    FAILED = (
        1,
        "the tuning failed or was cancelled, a confirmation was declined, or the server "
        "answered with an unexpected error",
    )
    USAGE = (
        2,
        "bad input or usage: a bad flag, bad training data (the message names the row), an id "
        "that already exists, an operation in the wrong state (nothing to cancel), a base model "
        "the server does not offer",
    )
    NOT_FOUND = 3, "not found: no such tuned model or operation, or (embedded) no such base model"
    UNREACHABLE = 4, "the server cannot be reached or did not answer in time"
    NOT_ALLOWED = (
        5,
        "not allowed: a missing, wrong or revoked API key, or a role that does not allow the "
        "call (a READER deleting, a non-owner sharing)",
    )
    INTERRUPTED = 130, "interrupted with Ctrl-C (a tuning keeps running)"


OK, FAILED, USAGE = ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE
NOT_FOUND, UNREACHABLE, NOT_ALLOWED = ExitCode.NOT_FOUND, ExitCode.UNREACHABLE, ExitCode.NOT_ALLOWED
INTERRUPTED = ExitCode.INTERRUPTED

_EXIT_BY_ERROR: tuple[tuple[type[errors.TunesmithError], ExitCode], ...] = (
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


def exit_code(e: errors.TunesmithError) -> ExitCode:
    """The documented exit code for a typed error (``_EXIT_BY_ERROR``; others are FAILED)."""
    if isinstance(e, errors.Internal) and _unreachable(e):
        return UNREACHABLE
    for cls, code in _EXIT_BY_ERROR:
        if isinstance(e, cls):
            return code
    return FAILED


def _unreachable(e: BaseException) -> bool:
    import httpx

    return isinstance(e.__cause__, httpx.TransportError)


def fail(message: str, code: ExitCode) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


@contextlib.contextmanager
def handle_errors(flags: Mapping[str, str] | None = None) -> Iterator[None]:
    """Turn typed errors into a one-line message and their exit code, never a traceback.

    The message names the command's flags, not the SDK's parameters: a field that is also the
    name of one of the command's options (``batch_size``) becomes the flag the user typed
    (``--batch-size``); ``flags`` maps the fields named otherwise (``{"candidate_count":
    "candidates"}``, the typer parameter).
    """
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except errors.TunesmithError as e:
        fail(in_flags(e.message, flags or {}), exit_code(e))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(INTERRUPTED) from None
    except Exception as e:  # a bug, not bad input: still one line unless asked for more
        if os.environ.get(DEBUG_ENV):
            raise
        fail(
            f"unexpected {type(e).__name__}: {e} ({DEBUG_ENV}=1 shows the traceback)",
            FAILED,
        )


class RawArgsGroup(TyperGroup):
    """The root command group: it notes the command being run and the words typed after
    ``tunesmith``, so that an error can name a flag as it was typed (``-n``, ``--candidates``)."""

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        leaf, words = command, [w for w in rest if not w.startswith("-")]
        while isinstance(leaf, TyperGroup) and words:  # models list: the list command
            leaf, words = leaf.get_command(ctx, words[0]) or leaf, words[1:]
        _INVOCATION.set((leaf, list(args)))
        return name, command, rest


_INVOCATION: contextvars.ContextVar[tuple[Any, list[str]] | None] = contextvars.ContextVar(
    "tunesmith_cli_invocation", default=None
)
# A field at the start of a message or of one of its "; "-joined problems: "epoch_count: 0 ...".
_FIELD = re.compile(r"(?:^|(?<=; ))([a-z][a-z0-9_]*)(?=:)")


def in_flags(message: str, renamed: Mapping[str, str]) -> str:
    """``message`` with the SDK's field names replaced by the running command's flags."""
    invocation = _INVOCATION.get()
    if invocation is None:
        return message
    command, typed = invocation
    options = {p.name: p for p in command.params if isinstance(p, TyperOption)}

    def flag(m: re.Match) -> str:
        option = options.get(renamed.get(m[1], m[1]))
        return m[1] if option is None else _as_typed(option, typed)

    return _FIELD.sub(flag, message)


def _as_typed(option: TyperOption, typed: list[str]) -> str:
    """The spelling of ``option`` the user typed (``-n`` for ``-n 3`` or ``-n3``), else its
    long form."""
    spellings = [*option.opts, *option.secondary_opts]
    for word in typed:
        for s in spellings:
            short = not s.startswith("--")
            if word == s or word.startswith(s + "=") or (short and word.startswith(s)):
                return s
    return max(spellings, key=len)


def plural(count: int, word: str) -> str:
    """``1 step``, ``2 steps``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


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
