"""``op.plot()``: the loss curve of a tuning operation as a matplotlib figure."""

from __future__ import annotations

import datetime as dt
import sys

import pytest

from tunesmith.sdk.operations import CreateTunedModelOperation
from tunesmith.types import (
    CreateTunedModelMetadata,
    OperationRecord,
    TuningSnapshot,
    ValidationLosses,
)

pytest.importorskip("matplotlib")


T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


class HeldOut:
    """A client that answers only for the validation losses (given as {step: loss})."""

    def __init__(self, per_epoch: int, losses: dict[int, float]):
        snaps = [TuningSnapshot(step, step // per_epoch, loss, T0) for step, loss in losses.items()]
        self.answer = ValidationLosses(example_count=4 if losses else 0, losses=snaps)

    def get_validation_losses(self, name, opts):
        return self.answer


def operation(losses: list[float], total: int, per_epoch: int, done: bool = True, held_out=None):
    snaps = [
        TuningSnapshot(i, (i - 1) // per_epoch + 1, loss, T0 + dt.timedelta(seconds=i))
        for i, loss in enumerate(losses, start=1)
    ]
    meta = CreateTunedModelMetadata("tunedModels/plotted", total, len(snaps), 100.0, snaps)
    record = OperationRecord("tunedModels/plotted/operations/op1", meta, done=done)
    return CreateTunedModelOperation(record, client=HeldOut(per_epoch, held_out or {}))


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


def test_plot_draws_the_validation_loss_at_the_end_of_each_epoch():
    fig = operation([2.0, 1.5, 1.2, 1.0], total=4, per_epoch=2, held_out={2: 1.8, 4: 1.3}).plot()
    (ax,) = fig.axes
    held_out = next(line for line in ax.get_lines() if line.get_label() == "validation loss")
    assert list(held_out.get_xdata()) == [2, 4] and list(held_out.get_ydata()) == [1.8, 1.3]
    assert ax.get_legend() is not None


def test_history_has_a_validation_column_only_with_validation_data():
    plain = operation([2.0, 1.5], total=2, per_epoch=1).history
    assert "validation_loss" not in plain.columns
    history = operation([2.0, 1.5, 1.2, 1.0], total=4, per_epoch=2, held_out={2: 1.8}).history
    assert list(history.columns) == [
        "step",
        "epoch",
        "mean_loss",
        "compute_time",
        "validation_loss",
    ]
    assert history["validation_loss"].isna().tolist() == [True, False, True, True]
    assert history.loc[1, "validation_loss"] == 1.8


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
