"""What a tuned model's weights are comes from its record, not from the files in its folder:
an adapter tuned from a fully tuned model sits on that model's weights, through any chain of
adapters tuned from adapters."""

from __future__ import annotations

from tunesmith.records.tuning import CreateTunedModelRequest
from tunesmith.store.db import write_session
from tunesmith.store.tables import TunedModelRow
from tunesmith.types import TunedModelState, TuningExample


def _finished(service, model_id: str, source: str, method: str) -> None:
    req = CreateTunedModelRequest(
        source, [TuningExample("1", "2")], id=model_id, epoch_count=1, method=method
    )
    service.tuning.create_tuned_model(req)
    with write_session(service.store.engine) as s:  # as the worker leaves a finished job
        row = s.get(TunedModelRow, model_id)
        row.state = TunedModelState.ACTIVE.value
        row.adapter_path = f"adapters/{model_id}"


def test_an_adapter_sits_on_its_nearest_fully_tuned_ancestor(service, tiny_model_dir):
    _finished(service, "plain", str(tiny_model_dir), "lora")
    _finished(service, "whole", str(tiny_model_dir), "full")
    _finished(service, "child", "tunedModels/whole", "lora")
    _finished(service, "grandchild", "tunedModels/child", "lora")
    _finished(service, "rewhole", "tunedModels/child", "full")

    weights = {m: service.store.weights(m) for m in ("plain", "whole", "child", "grandchild")}
    assert weights["plain"].is_adapter and weights["plain"].foundation is None
    assert not weights["whole"].is_adapter and weights["whole"].foundation is None
    assert weights["child"].foundation == "adapters/whole"
    assert weights["grandchild"].foundation == "adapters/whole"
    assert service.store.weights("rewhole").method == "full"
    assert service.store.get_tuned_model("whole").method == "full"
    assert service.store.get_tuned_model("child").method == "lora"


def test_a_model_being_tuned_has_no_weights_yet_but_its_foundation(service, tiny_model_dir):
    _finished(service, "whole", str(tiny_model_dir), "full")
    req = CreateTunedModelRequest("tunedModels/whole", [TuningExample("1", "2")], id="queued")
    service.tuning.create_tuned_model(req)
    queued = service.store.weights("queued")
    assert queued.path is None and queued.foundation == "adapters/whole"  # for checkpoints
    assert service.store.weights("missing") is None
