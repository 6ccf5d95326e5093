"""The embedded worker's OpenMP threads sleep while they wait (a spinning pair made training
steps ten times slower on a busy machine), unless the user chose a policy."""

from __future__ import annotations

from tunesmith.jobs import embedded
from tunesmith.settings import get_settings


def test_embedded_processes_wait_passively_unless_told_otherwise(home, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert embedded._env(get_settings())["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert embedded._env(get_settings())["OMP_WAIT_POLICY"] == "ACTIVE"
