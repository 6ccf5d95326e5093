"""The tune bar's time left, read from operations as a server sends them."""

from tunesmith.cli.tune import _eta
from tunesmith.types import CreateTunedModelMetadata
from tunesmith.wire.tuning import snapshot_from_json


def _meta(snapshots: list[dict], total_steps: int = 10) -> CreateTunedModelMetadata:
    snaps = [snapshot_from_json(s) for s in snapshots]
    return CreateTunedModelMetadata(
        tuned_model="tunedModels/t",
        total_steps=total_steps,
        completed_steps=snaps[-1].step,
        snapshots=snaps,
    )


def test_time_left_follows_the_pace_of_the_snapshots():
    meta = _meta(
        [
            {"step": 1, "epoch": 0, "meanLoss": 2.0, "computeTime": "2026-01-01T00:00:00Z"},
            {"step": 3, "epoch": 0, "meanLoss": 1.0, "computeTime": "2026-01-01T00:00:20Z"},
        ]
    )
    assert _eta(meta) == "1:10"  # 10 s a step, 7 steps left


def test_snapshots_without_a_compute_time_leave_it_unknown_rather_than_failing():
    untimed = [{"step": n, "epoch": 0, "meanLoss": 1.0} for n in (1, 2, 3)]
    assert _eta(_meta(untimed)) == "-"
    timed = {"step": 4, "epoch": 0, "meanLoss": 1.0, "computeTime": "2026-01-01T00:00:30Z"}
    first = {"step": 2, "epoch": 0, "meanLoss": 1.0, "computeTime": "2026-01-01T00:00:00Z"}
    assert _eta(_meta([untimed[0], first, untimed[2], timed])) == "1:30"  # 15 s a step, 6 left
