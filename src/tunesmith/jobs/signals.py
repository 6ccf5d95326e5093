"""Stopping a process on SIGTERM / SIGINT without work inside a signal handler.

A Python signal handler runs in the main thread between two of its bytecodes, possibly
inside a lock that the handler's own work needs: a worker whose handler set a
``threading.Event`` deadlocked when a second SIGTERM arrived while the first handler held
that Event's lock (its server killed, the kernel's parent-death signal and others landing
together), and lived on orphaned with its job's lease. So the handlers here do nothing; the
interpreter writes each signal's number to a pipe (``signal.set_wakeup_fd``), and a thread
of its own reads it and calls ``stop``, once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signals(stop: Callable[[], None]) -> None:
    """Call ``stop()`` (once, in another thread) when SIGTERM or SIGINT arrives. Call from
    the main thread."""
    read, write = os.pipe()
    os.set_blocking(write, False)  # a full pipe drops a signal's byte instead of blocking
    signal.set_wakeup_fd(write)
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: None)  # the byte on the pipe is the signal

    def wait() -> None:
        with os.fdopen(read, "rb", buffering=0) as pipe:
            while data := pipe.read(64):
                if any(b in STOP_SIGNALS for b in data):
                    stop()
                    return

    threading.Thread(target=wait, name="stop-signals", daemon=True).start()
