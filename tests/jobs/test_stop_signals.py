"""SIGTERM stops a worker process even when it lands while the main thread holds a lock
that stopping needs (a handler that set an Event deadlocked that way, and the worker lived
on orphaned, holding its job's lease)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, signal, sys, threading, time
from tunesmith.jobs.signals import on_stop_signals

lock, stopped, calls = threading.Lock(), threading.Event(), []

def stop():
    with lock:  # as Event.set takes the Event's own lock
        calls.append(1)
        stopped.set()

on_stop_signals(stop)
with lock:  # the signals land while the main thread holds it
    for _ in range(3):
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.3)
sys.exit(0 if stopped.wait(10) and calls == [1] else 1)
"""


def test_a_stop_signal_landing_inside_a_lock_stops_the_process_once():
    done = subprocess.run([sys.executable, "-c", SCRIPT], timeout=60, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def test_the_old_handler_deadlocked_there():
    """The same script with the stop called inside the handler: it never finishes."""
    old = SCRIPT.replace(
        "on_stop_signals(stop)", "signal.signal(signal.SIGTERM, lambda *_: stop())"
    )
    try:
        subprocess.run([sys.executable, "-c", old], timeout=5, capture_output=True)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError("the handler that takes the lock finished: the test shows nothing")
