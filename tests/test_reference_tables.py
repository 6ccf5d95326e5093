"""The reference tables in the docs say what the code does: the command line's exit codes
(docs/cli.md against ``ExitCode``) and the settings (docs/configuration.md and SECURITY.md's
limits against ``Settings`` and ``get_settings``). A table that drifts fails here."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from tunesmith.cli._common import DEBUG_ENV, ExitCode
from tunesmith.engine.base_models import SHARED_ENV
from tunesmith.settings import Settings, get_settings, parse_bytes

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "TUNESMITH_"
# Variables the code reads that are no setting of a user's: what they are for.
INTERNAL = {
    "TUNESMITH_EMBEDDED_SETTINGS": "how the embedded client hands its settings to the "
    "generation server it starts",
}
# Documented variables that are read where they are used, not through ``Settings``: the command
# line's traceback switch, and the installation's (not a home's) cache of converted bases.
OUTSIDE_SETTINGS = {DEBUG_ENV, SHARED_ENV}


def markdown_table(path: Path, first_header: str) -> list[dict[str, str]]:
    """The rows of the table in ``path`` whose first column is headed ``first_header``."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells and cells[0] == first_header:
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(cells, _cells(row), strict=True)))
            return rows
    raise AssertionError(f"{path.name} has no table headed '{first_header}'")


def _cells(line: str) -> list[str]:
    line = line.strip()
    if not line.startswith("|"):
        return []
    return [c.strip() for c in line.strip("|").split("|")]


def _code(cell: str) -> str | None:
    """The cell's first `code` span, None for "unset"."""
    m = re.search(r"`([^`]*)`", cell)
    return m[1] if m else None


# -- exit codes -------------------------------------------------------------------------------


def test_the_exit_code_table_is_the_codes():
    documented = {
        int(row["code"]): row["meaning"] for row in markdown_table(ROOT / "docs/cli.md", "code")
    }
    assert documented == {code.value: code.meaning for code in ExitCode}


# -- settings ---------------------------------------------------------------------------------

# A value other than the default for each setting that is not a number: setting it must change
# the setting, or the variable is not the one read.
OTHER = {
    "home": "/tmp/tunesmith-elsewhere",
    "database_url": "sqlite:////tmp/tunesmith-elsewhere.db",
    "default_base_model": "models/gemma-3-270m",
    "base_models": "tiny=/srv/models/tiny",
    "max_base_model_bytes": "1GiB",
    "api_endpoint": "http://127.0.0.1:9",
    "api_key": "ts-a-key",
    "adapter_cache": "3,1MiB",
    "serving_weights": "float32",
    "serving_engine": "torch",
    "worker_ready": "0",
}


@pytest.fixture()
def clean_env(monkeypatch, tmp_path):
    """No TUNESMITH_* variable set, and a home of its own (for ``~``)."""
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


def _variable(field: dataclasses.Field) -> str:
    return PREFIX + field.name.upper()


def configuration() -> dict[str, dict[str, str]]:
    rows = markdown_table(ROOT / "docs/configuration.md", "variable")
    return {_code(row["variable"]): row for row in rows}


def test_every_setting_is_documented_and_nothing_else():
    documented = set(configuration())
    settings = {_variable(f) for f in dataclasses.fields(Settings)}
    assert documented - OUTSIDE_SETTINGS == settings, "documented but no setting, or undocumented"
    assert OUTSIDE_SETTINGS <= documented


def test_every_variable_the_code_reads_is_documented():
    read = set()
    for path in (ROOT / "src/tunesmith").rglob("*.py"):
        read |= set(re.findall(r"[\"'](TUNESMITH_[A-Z_]+)[\"']", path.read_text()))
    assert read - set(INTERNAL) == set(configuration())


@pytest.mark.parametrize("field", dataclasses.fields(Settings), ids=lambda f: f.name)
def test_each_variable_sets_its_setting_and_its_documented_default_is_the_default(field, clean_env):
    variable = _variable(field)
    row = configuration()[variable]
    default = get_settings()
    documented = _code(row["default"])
    if documented is None:
        assert row["default"] == "unset"
        assert getattr(default, field.name) in (None, ()), f"{variable} has a default"
    else:
        # A default made of another setting names it: sqlite:///$TUNESMITH_HOME/tunesmith.db
        clean_env.setenv(variable, documented.replace("$TUNESMITH_HOME", str(default.home)))
        assert getattr(get_settings(), field.name) == getattr(default, field.name), (
            f"{variable}: the documented default {documented!r} is not the default"
        )
    value = getattr(default, field.name)
    other = OTHER.get(field.name) or str(value + 7)
    clean_env.setenv(variable, other)
    assert getattr(get_settings(), field.name) != value, f"{variable} does not set {field.name}"


def test_security_limits_table_has_the_defaults(clean_env):
    default = get_settings()
    by_variable = {_variable(f): f.name for f in dataclasses.fields(Settings)}
    checked = 0
    for row in markdown_table(ROOT / "SECURITY.md", "limit"):
        variable = _code(row["variable"])
        if variable is None or not variable.startswith(PREFIX):
            continue
        amount = re.sub(r"(?<=\d) (?=\d)", "", row["default"].split("(")[0].strip())
        assert parse_bytes(amount, variable) == getattr(default, by_variable[variable]), variable
        checked += 1
    assert checked >= 5
