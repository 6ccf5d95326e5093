"""``op.plot()``: the loss curve of a tuning operation as a matplotlib figure."""

from __future__ import annotations

import datetime as dt
import sys

import pytest

from tunesmith.sdk.operations import CreateTunedModelOperation
from tunesmith.types import CreateTunedModelMetadata, OperationRecord, TuningSnapshot

pytest.importorskip("matplotlib")


def operation(losses: list[float], total: int, per_epoch: int, done: bool = True):
    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    snaps = [
        TuningSnapshot(i, (i - 1) // per_epoch + 1, loss, t0 + dt.timedelta(seconds=i))
        for i, loss in enumerate(losses, start=1)
    ]
    meta = CreateTunedModelMetadata("tunedModels/plotted", total, len(snaps), 100.0, snaps)
    record = OperationRecord("tunedModels/plotted/operations/op1", meta, done=done)
    return CreateTunedModelOperation(record, client=None)


def test_plot_returns_a_figure_with_every_snapshot():
    from matplotlib.figure import Figure

    losses = [2.0, 1.5, 1.2, 1.0, 0.9, 0.85]
    fig = operation(losses, total=6, per_epoch=3).plot()
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    (line,) = ax.get_lines()[:1]
    assert list(line.get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert list(line.get_ydata()) == losses
    assert len(ax.get_lines()) == 2  # the curve and one epoch boundary
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss"
    assert "6/6 steps" in ax.get_title()
    fig.savefig(__import__("io").BytesIO(), format="png")  # it renders


def test_plot_on_given_axes_and_before_any_step():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    assert operation([], total=10, per_epoch=5).plot(ax=ax) is ax.figure
    assert list(ax.get_lines()[0].get_xdata()) == []
    assert ax.get_xlim() == (1, 10)  # the whole run's length, to be filled in


def test_plot_without_matplotlib_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'tunesmith\[plot\]'"):
        operation([1.0], total=1, per_epoch=1).plot()
