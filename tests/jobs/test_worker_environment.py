"""The processes tunesmith starts bound how long their OpenMP threads spin before sleeping
(libgomp's default spin made training ten times slower on a busy machine; sleeping at once
made decoding twice as slow on a quiet one), and its tuning workers allocate with jemalloc
where the system has it (glibc's allocator took a tenth of a step), unless the user chose."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.jobs import embedded
from tunesmith.settings import get_settings

from .conftest import running, wait_until


def test_started_processes_spin_a_bounded_while(home, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    env = embedded._env(get_settings())
    assert env["GOMP_SPINCOUNT"] == embedded.OPENMP_SPIN_COUNT
    assert "OMP_WAIT_POLICY" not in env


@pytest.mark.parametrize(
    "chosen",
    [{"OMP_WAIT_POLICY": "PASSIVE"}, {"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "7"}],
)
def test_the_users_openmp_choice_stands(chosen):
    env = embedded.openmp_env(dict(chosen))
    assert env == chosen


@pytest.mark.skipif(
    embedded._jemalloc() is None,  # also off Linux, where there is no LD_PRELOAD nor /proc
    reason="jemalloc is not installed here (Debian: libjemalloc2)",
)
def test_a_started_worker_allocates_with_jemalloc(home, tiny_model_dir, monkeypatch):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.setenv("TUNESMITH_WORKER_IDLE_SECONDS", "2")
    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_model_dir))
    assert embedded.ensure_worker(get_settings())
    pids = wait_until(lambda: running(home, "tunesmith.jobs.worker"), what="the worker")
    maps = Path(f"/proc/{min(pids)}/maps").read_text()
    assert "jemalloc" in maps
    wait_until(lambda: not running(home, "tunesmith.jobs.worker"), what="the worker to leave")


@pytest.mark.parametrize("chosen", ["/usr/lib/libother.so", ""])
def test_the_users_preload_stands(chosen, monkeypatch):
    monkeypatch.setattr(embedded, "_jemalloc", lambda: "libjemalloc.so.2")
    assert embedded.worker_env({"LD_PRELOAD": chosen})["LD_PRELOAD"] == chosen
    assert embedded.worker_env({})["LD_PRELOAD"] == "libjemalloc.so.2"


def test_without_jemalloc_workers_keep_the_system_allocator(monkeypatch):
    monkeypatch.setattr(embedded, "_jemalloc", lambda: None)
    assert "LD_PRELOAD" not in embedded.worker_env({})
