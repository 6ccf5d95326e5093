"""The embedded generation server: the HTTP API on a Unix socket, for this user only.

    python -m tunesmith.api.local     (started on demand by ensure_generation_server)

With no server configured, the embedded client sends its generation calls here
(:mod:`tunesmith.sdk.warm`), so base models and adapters stay loaded between scripts and CLI
calls instead of loading again in each. It is the app ``tunesmith serve`` runs (the same
routes, wire form and typed errors), with these differences:

- it listens on a socket file that only its user may open (mode 0600), not on a port;
- its callers are that user, as in-process calls are: no API key is asked for and the
  caller is the embedded one (the same rights as ``ts.generate_text`` in the user's own
  process, who can read the home's database anyway);
- it runs no tuning jobs (the embedded worker does);
- it leaves after ``TUNESMITH_WORKER_IDLE_SECONDS`` without a request.

Leaving drops no request: it removes its socket file and stops accepting, then finishes what
it accepted. A caller that connects in between gets a refused or reset connection before
anything ran, and starts (or waits for) the next server. The socket file is removed while
the lock is still held, so a server never removes its successor's socket.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

log = logging.getLogger("tunesmith.generation")


def _listen(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)  # left by a server that was killed: the lock is ours now
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)  # created 0600: never open to others, not even for a moment
    try:
        sock.bind(str(path))
    finally:
        os.umask(umask)
    sock.listen(128)
    return sock


def _serve(settings, sock: socket.socket, path: Path) -> None:
    import uvicorn

    from ..runtime import preload_transformers
    from .app import create_app
    from .deps import get_caller

    class IdleServer(uvicorn.Server):
        """Leaves once no connection has been open for ``idle`` seconds (counted from when it
        started serving: callers may have been waiting since before)."""

        idle = settings.worker_idle_seconds
        answered, last = 0, None

        async def on_tick(self, counter: int) -> bool:
            if await super().on_tick(counter):
                return True
            state, now = self.server_state, time.monotonic()
            busy = state.connections or state.tasks or state.total_requests != self.answered
            if busy or self.last is None:
                self.answered, self.last = state.total_requests, now
                return False
            if now - self.last < self.idle:
                return False
            log.info("leaving after %.0f s without a request", now - self.last)
            path.unlink(missing_ok=True)
            return True

    # Its one caller is this machine's user: base models are named as in-process (folders,
    # .gguf files, hub ids), not only the ones a server's operator offers.
    app = create_app(settings, worker=False, offered_base_models_only=False)
    app.dependency_overrides[get_caller] = _local_caller
    # Requests run in threads, and transformers' lazy imports are not thread-safe.
    preload_transformers()
    config = uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=None)
    IdleServer(config).run(sockets=[sock])


async def _local_caller():
    return None  # the embedded caller, as in the user's own process


def main(argv: list[str] | None = None) -> None:
    from ..jobs import embedded
    from ..serving.batcher import map_large_buffers
    from ..settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m tunesmith.api.local")
    parser.add_argument("--lock-fd", type=int, default=None, help="the server's lock, held")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(message)s")
    # uvicorn stops gracefully on SIGTERM, then raises it again: leave through the finally
    # below (which removes the socket), not by the default handler's abrupt exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    map_large_buffers()  # this process is the generation server's own
    text = os.environ.get(embedded.SETTINGS_ENV)
    settings = embedded.settings_from_json(text) if text else get_settings()
    lock_path, path = embedded.generation_paths(settings)
    with embedded.hold_lock(lock_path, args.lock_fd) as lock:
        if lock is None:
            log.info("another generation server serves these settings")
            return
        sock = _listen(path)
        log.info("generation server %d for %s listening on %s", os.getpid(), settings.home, path)
        try:
            _serve(settings, sock, path)
        finally:
            path.unlink(missing_ok=True)  # while the lock is still held
            log.info("generation server %d stopped", os.getpid())


if __name__ == "__main__":
    main()
