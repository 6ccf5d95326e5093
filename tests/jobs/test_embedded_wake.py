"""A job queued while the home's embedded worker runs wakes it (a byte on the home's wake
pipe), so an idle worker a previous script left running claims the job at once rather than
at its next look at the queue. Waking is best effort: with no worker listening, or something
else in the pipe's place, queuing a job neither fails nor writes anywhere."""

from __future__ import annotations

import array
import errno
import fcntl
import os
import termios
import threading

import pytest

from tunesmith.jobs import embedded
from tunesmith.jobs.supervisor import listen_for_wakes
from tunesmith.settings import get_settings

from .conftest import running, wait_until


@pytest.fixture()
def held_lock(home):
    """The home's worker lock held here, as a running worker holds it: callers then wake
    rather than start a worker."""
    with embedded.worker_lock(get_settings()) as lock:
        assert lock is not None
        yield lock


def test_a_queued_job_wakes_the_running_worker(held_lock):
    settings = get_settings()
    woke = threading.Event()
    wakes = embedded.job_wakes(settings)
    assert wakes is not None
    listen_for_wakes(wakes, woke)
    assert not embedded.ensure_worker(settings)  # one runs: not started again, woken
    assert woke.wait(30)


def test_waking_with_no_worker_listening_is_harmless(held_lock):
    settings = get_settings()
    assert not embedded.ensure_worker(settings)  # no pipe yet
    os.mkfifo(settings.worker_wake)  # a pipe an earlier worker left: nobody reads it
    assert not embedded.ensure_worker(settings)
    with pytest.raises(OSError) as nobody:
        os.open(settings.worker_wake, os.O_WRONLY | os.O_NONBLOCK)
    assert nobody.value.errno == errno.ENXIO


def test_a_file_in_the_pipes_place_is_left_alone(held_lock):
    settings = get_settings()
    settings.worker_wake.write_text("mine")
    assert embedded.job_wakes(settings) is None  # the worker then only polls
    assert not embedded.ensure_worker(settings)
    assert settings.worker_wake.read_text() == "mine"


def test_the_embedded_worker_listens_while_it_runs(home, tiny_model_dir, monkeypatch):
    # Idle long enough that it is still there to read the byte on a slow, busy machine.
    monkeypatch.setenv("TUNESMITH_WORKER_IDLE_SECONDS", "5")
    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_model_dir))
    settings = get_settings()
    assert embedded.ensure_worker(settings)

    def reader_there() -> bool:  # opening a pipe to write fails (ENXIO) with no reader
        try:
            os.close(os.open(settings.worker_wake, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            return False
        return True

    wait_until(reader_there, what="the worker to open its wake pipe")
    pipe = os.open(settings.worker_wake, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(pipe, b"j")  # what a caller writes; the worker's listener reads it

        def unread() -> int:
            count = array.array("i", [0])
            fcntl.ioctl(pipe, termios.FIONREAD, count)
            return count[0]

        wait_until(lambda: unread() == 0, what="the worker to read the wake")
    finally:
        os.close(pipe)
    wait_until(lambda: not running(home, "tunesmith.jobs.worker"), what="the worker to leave")
    # Its files close as the process ends, a moment after its command line is gone.
    wait_until(lambda: not reader_there(), what="no reader once the worker has left")
