"""The create-tuned-model long-running operation, as Google's SDK wraps it.

op = ts.create_tuned_model(...)
for metadata in op.wait_bar():   # tqdm over steps
    pass
model = op.result()              # raises the typed error if the tuning failed
op.history                       # pandas DataFrame of the per-step snapshots
op.plot()                        # the loss curve, a matplotlib figure (pip install tunesmith[plot])

With validation data (tunesmith's own, ``create_tuned_model(..., validation_data=...)``) both
also show the loss over the held-out examples at the end of each epoch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import errors
from ..types import (
    CreateTunedModelMetadata,
    OperationRecord,
    Phase,
    TunedModel,
    ValidationLosses,
)
from .clients import Client, RequestOptions, keep_running

# How long the progress bar waits for the operation to end before it shows it again.
POLL_SECONDS = 0.5
# How long one wait asks the service to hold its answer for an operation still running: the
# answer comes as soon as the operation ends, so this only sets how often the call is renewed
# (short: a server told to stop finishes answering its waits first).
WAIT_SECONDS = 2.0
# How often a waiting caller makes sure a worker is alive to run the job.
KEEP_RUNNING_SECONDS = 5.0


class CreateTunedModelOperation:
    def __init__(self, record: OperationRecord, client: Client, opts: RequestOptions | None = None):
        self._record = record
        self._client = client
        self._opts = opts or RequestOptions()
        self._callbacks: list[Callable] = []
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"<CreateTunedModelOperation {self.name} done={self._record.done} "
            f"{m.completed_steps}/{m.total_steps} steps>"
        )

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def metadata(self) -> CreateTunedModelMetadata:
        return self._record.metadata

    @property
    def operation(self) -> OperationRecord:
        return self._record

    def update(self, wait: float = 0.0) -> CreateTunedModelMetadata:
        """Fetch the operation's current state; returns its metadata. With ``wait`` (seconds,
        tunesmith's own), the state once the operation ends, if it does within that time."""
        if wait > 0:
            self._record = self._client.wait_operation(self.name, wait, self._opts)
        else:
            self._record = self._client.get_operation(self.name, self._opts)
        return self._record.metadata

    def done(self) -> bool:
        if not self._record.done:
            self.update()
        return self._record.done

    def wait(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        last_nudge = 0.0
        while not self._record.done:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise errors.DeadlineExceeded(
                    f"{self.name} is not done after {timeout} s "
                    f"({self.metadata.completed_steps}/{self.metadata.total_steps} steps)"
                )
            if now - last_nudge > KEEP_RUNNING_SECONDS:
                keep_running(self._client)
                last_nudge = now
            self.update(
                wait=WAIT_SECONDS if deadline is None else min(WAIT_SECONDS, deadline - now)
            )

    def result(self, timeout: float | None = None) -> TunedModel:
        """Wait for the tuning to end; the tuned model, or the typed error it failed with."""
        self.wait(timeout)
        error = self.exception()
        if error is not None:
            raise error
        return self._client.get_tuned_model(self._record.metadata.tuned_model, self._opts)

    def exception(self, timeout: float | None = None) -> errors.TunesmithError | None:
        self.wait(timeout)
        err = self._record.error
        return None if err is None else errors.from_grpc_code(err.code, err.message)

    def cancel(self) -> bool:
        """Ask to cancel; True if the operation was still running."""
        if self.done():
            return False
        self._record = self._client.cancel_operation(self.name, self._opts)
        return True

    def cancelled(self) -> bool:
        return self.done() and self._record.error is not None and self._record.error.code == 1

    def add_done_callback(self, fn: Callable[[CreateTunedModelOperation], object]) -> None:
        """Call ``fn(self)`` once the operation is done (at once if it already is)."""
        if self.done():
            fn(self)
            return
        with self._lock:
            self._callbacks.append(fn)
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, daemon=True)
                self._watcher.start()

    def _watch(self) -> None:
        self.wait()
        with self._lock:
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn(self)

    def wait_bar(self, **kwargs) -> Iterator[CreateTunedModelMetadata]:
        """A tqdm progress bar over the steps; yields the metadata each time it changes.

        Before the first step the bar says what the run is doing: waiting for a worker,
        "preparing base model (first run, once)" with that preparation's own progress in
        percent (a fresh ``TUNESMITH_HOME`` converts the base model once), loading it.
        """
        import tqdm.auto

        bar = tqdm.auto.tqdm(total=self.metadata.total_steps, initial=0, **kwargs)
        steps_look = (kwargs.get("desc") or "", kwargs.get("unit", "it"))  # the caller's
        last_nudge = 0.0
        preparing = False
        try:
            done = self.done()
            while True:
                meta = self.metadata
                preparing = _show_phase(bar, meta, preparing, steps_look)
                if meta.snapshots:
                    bar.set_postfix(loss=f"{meta.snapshots[-1].mean_loss:.4f}")
                yield meta
                if done:
                    break
                if time.monotonic() - last_nudge > KEEP_RUNNING_SECONDS:
                    keep_running(self._client)
                    last_nudge = time.monotonic()
                self.update(wait=POLL_SECONDS)
                done = self._record.done
        finally:
            bar.close()

    def validation_losses(self) -> ValidationLosses:
        """tunesmith's own: the loss over the validation data after each epoch so far."""
        try:
            return self._client.get_validation_losses(self.metadata.tuned_model, self._opts)
        except errors.NotFound:  # the model was deleted since
            return ValidationLosses()

    @property
    def history(self):
        """The per-step snapshots: a pandas DataFrame (step, epoch, mean_loss, compute_time).

        A job with validation data also has a ``validation_loss`` column: the loss over the
        held-out examples on the rows of steps that ended an epoch, NaN on the others.
        """
        import pandas as pd

        if not self._record.done:
            self.update()
        columns = ["step", "epoch", "mean_loss", "compute_time"]
        rows: list[dict[str, Any]] = [
            {
                "step": s.step,
                "epoch": s.epoch,
                "mean_loss": s.mean_loss,
                "compute_time": s.compute_time,
            }
            for s in self.metadata.snapshots
        ]
        held_out = self.validation_losses()
        if held_out.example_count:
            by_step = {v.step: v.mean_loss for v in held_out.losses}
            for row in rows:
                row["validation_loss"] = by_step.get(row["step"], float("nan"))
            columns.append("validation_loss")
        return pd.DataFrame(rows, columns=columns)

    def plot(self, ax=None):
        """The loss curve so far: a matplotlib ``Figure`` (shown inline in notebooks).

        Draws on ``ax`` when given; epochs are marked with dotted lines, and the validation
        loss (if the job has validation data) with points at their ends. Needs the ``plot``
        extra (``pip install 'tunesmith[plot]'``).
        """
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("op.plot() needs matplotlib: pip install 'tunesmith[plot]'") from None

        if not self._record.done:
            self.update()
        meta = self.metadata
        if ax is None:
            ax = Figure(figsize=(7, 3.5), layout="constrained").subplots()
        steps = [s.step for s in meta.snapshots]
        ax.plot(steps, [s.mean_loss for s in meta.snapshots], color="#3b5bdb", label="mean loss")
        held_out = self.validation_losses().losses
        if held_out:
            ax.plot(
                [v.step for v in held_out],
                [v.mean_loss for v in held_out],
                color="#e8590c",
                marker="o",
                label="validation loss",
            )
        for prev, s in zip(meta.snapshots, meta.snapshots[1:], strict=False):
            if s.epoch != prev.epoch:
                ax.axvline(s.step - 0.5, color="#999999", linestyle=":", linewidth=1)
        ax.set_xlim(1, max(meta.total_steps, steps[-1] if steps else 1, 2))
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(
            f"{meta.tuned_model}: {meta.completed_steps}/{meta.total_steps} steps", fontsize=10
        )
        ax.grid(alpha=0.3)
        if held_out:
            ax.legend(fontsize=8)
        return ax.figure


def _show_phase(bar, meta: CreateTunedModelMetadata, preparing: bool, steps_look) -> bool:
    """Draw ``meta`` on ``bar``: the preparation of the base model in percent while it lasts
    (``bar`` counts to 100 then), else the steps; until the steps begin the description says
    what the run does, then the caller's (``steps_look``: its description and unit).
    Returns whether the bar now shows the preparation."""
    phase = meta.phase
    now_preparing = phase is not None and phase.name == Phase.PREPARING_BASE_MODEL
    waiting = phase is not None and phase.name != Phase.TUNING
    description = phase.description if phase is not None and waiting else steps_look[0]
    bar.set_description_str(description, refresh=False)
    if now_preparing != preparing:
        bar.unit = "%" if now_preparing else steps_look[1]
        bar.reset(total=100 if now_preparing else meta.total_steps)
    if phase is not None and now_preparing:
        bar.update(round(100 * (phase.progress or 0.0)) - bar.n)
    else:
        bar.update(meta.completed_steps - bar.n)
    if waiting:
        bar.refresh()  # the phase and its clock, though no count moved
    return now_preparing
