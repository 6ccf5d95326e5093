"""The processes tunesmith starts bound how long their OpenMP threads spin before sleeping
(libgomp's default spin made training ten times slower on a busy machine; sleeping at once
made decoding twice as slow on a quiet one), unless the user chose a policy or a count."""

from __future__ import annotations

import pytest

from tunesmith.jobs import embedded
from tunesmith.settings import get_settings


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
def test_the_users_choice_stands(chosen):
    env = embedded.openmp_env(dict(chosen))
    assert env == chosen
