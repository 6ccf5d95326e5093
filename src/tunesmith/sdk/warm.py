"""The embedded client's generation, answered by the home's generation server.

Generating needs the base model in memory, and loading it takes seconds; a script or a
``tunesmith generate`` that loaded it itself would pay that on every run. So the embedded
client sends generate, stream and count calls to the home's generation server
(:mod:`tunesmith.api.local`, a background process that keeps models loaded) with the remote
client over the server's Unix socket, and starts that server when none runs, waiting up to
``START_SECONDS`` for it. The answers and errors are the service's own, through the same wire
form as a remote server's; the calling process never loads torch.

When the server cannot answer (it cannot start or went away before answering, or the request
cannot travel as JSON, such as a model named by a folder path or a NaN temperature) the call
runs in this process instead: generation never fails for the server's sake, it only costs
the model load.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from .. import errors
from ..settings import Settings

if TYPE_CHECKING:
    from .remote import RemoteClient

log = logging.getLogger("tunesmith.sdk")
T = TypeVar("T")

START_SECONDS = 60.0  # how long a call waits for a server that is starting
POLL_SECONDS = 0.02
MAX_LOST = 3  # answers lost to a server going away before the call runs here instead


class Unavailable(Exception):
    """The generation server cannot answer this call."""


class GenerationServer:
    """Calls on the home's generation server, falling back to this process."""

    def __init__(self, settings: Settings, *, enabled: bool = True):
        self.settings = settings
        self.enabled = enabled  # False: every call is answered in this process
        self._remote: RemoteClient | None = None

    def call(self, model, prompt, ask: Callable[[RemoteClient], T], local: Callable[[], T]) -> T:
        """``ask(remote)`` answered by the server, else ``local()`` answered here."""
        if not self.enabled or not _travels(model, prompt):
            return local()
        try:
            return self._ask(ask)
        except Unavailable as e:
            log.debug("generating in this process: %s", e)
            return local()

    def stream(self, model, prompt, ask, local) -> Iterator:
        """Like :meth:`call` for a stream; the first event decides where the rest comes from
        (and errors in the request are raised here, before iterating, as in-process)."""

        def first(remote: RemoteClient):
            events = ask(remote)
            head = next(events, None)
            if head is None:
                raise errors.Internal("the generation server ended the stream without an answer")
            return head, events

        if not self.enabled or not _travels(model, prompt):
            return local()
        try:
            head, rest = self._ask(first)
        except Unavailable as e:
            log.debug("generating in this process: %s", e)
            return local()
        return itertools.chain([head], rest)

    def _client(self) -> RemoteClient:
        if self._remote is None:
            import httpx

            from ..jobs.embedded import generation_paths
            from .remote import RemoteClient

            _, sock = generation_paths(self.settings)
            transport = httpx.HTTPTransport(uds=str(sock))
            self._remote = RemoteClient("http://tunesmith.local", transport=transport)
        return self._remote

    def _ask(self, ask):
        import httpx

        from ..engine.cores import held
        from ..jobs.embedded import ensure_generation_server, generation_paths

        deadline = time.monotonic() + START_SECONDS
        started = False
        lost = 0
        while True:
            try:
                return ask(self._client())
            except errors.TunesmithError as e:
                failure = e.__cause__
                if not isinstance(failure, httpx.TransportError) or isinstance(
                    failure, httpx.TimeoutException
                ):
                    raise  # the service's answer, or the caller's own deadline
            except (TypeError, ValueError) as e:  # not JSON: the service judges it here
                raise Unavailable(f"the request cannot travel as JSON ({e})") from e
            except OSError as e:
                raise Unavailable(str(e)) from e
            if not isinstance(failure, httpx.ConnectError):
                # Connected, then the server went before answering (it was leaving, or died):
                # nothing ran. Ask again, starting another if need be.
                lost += 1
                if lost >= MAX_LOST:
                    raise Unavailable(f"the generation server went away ({failure})")
                started = False
                continue
            lock, _ = generation_paths(self.settings)
            try:
                if not started:
                    started = ensure_generation_server(self.settings)
                elif not held(lock):  # the server this call started left before listening
                    log.warning(
                        "the generation server did not start (see %s); generating here",
                        self.settings.logs_dir / "generation.log",
                    )
                    raise Unavailable("the generation server this call started has exited")
            except OSError as e:
                raise Unavailable(f"cannot start the generation server: {e}") from e
            if time.monotonic() > deadline:
                raise Unavailable(f"no generation server answered within {START_SECONDS:.0f} s")
            time.sleep(POLL_SECONDS)


def _travels(model, prompt) -> bool:
    """Whether the HTTP API carries this request as it is: ``models/NAME`` or
    ``tunedModels/ID`` (one path segment) and a text prompt. Anything else is left to this
    process, so that its answer (or error) is exactly the service's."""
    return isinstance(model, str) and model.count("/") == 1 and isinstance(prompt, str)
