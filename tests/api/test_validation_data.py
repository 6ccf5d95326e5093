"""Validation data over HTTP (tunesmith's own): sent with the create, read from its own route,
and never seen by Google's clients in a TunedModel or an Operation."""

from __future__ import annotations

import json
import uuid

import pytest

from tunesmith_server import wait_done

EXAMPLES = [{"textInput": str(i), "output": str(i + 1)} for i in range(6)]
HELD_OUT = [{"textInput": "20", "output": "21"}, {"textInput": "one", "output": "two"}]


def _uid(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _dataset(rows) -> dict:
    return {"examples": {"examples": rows}}


def _create(http, model_id: str, validation=None):
    task = {
        "hyperparameters": {"epochCount": 2, "batchSize": 2},  # 6 steps; epochs end at 3 and 6
        "trainingData": _dataset(EXAMPLES),
    }
    if validation is not None:
        task["validationData"] = validation
    body = {"baseModel": "models/text-bison-001", "displayName": "held out", "tuningTask": task}
    return http.post("/v1beta/tunedModels", params={"tunedModelId": model_id}, json=body)


def _shape(value, path: str = "") -> set[str]:
    """Every key path in a JSON value (list items merged), to compare answers' shapes."""
    if isinstance(value, dict):
        return {path}.union(*(_shape(v, f"{path}.{k}") for k, v in value.items()))
    if isinstance(value, list):
        return {path}.union(*(_shape(v, f"{path}[]") for v in value))
    return {path}


def test_losses_are_recorded_per_epoch_and_googles_answers_do_not_change(http):
    plain_id, held_id = _uid("plain"), _uid("held")
    plain, held = _create(http, plain_id), _create(http, held_id, _dataset(HELD_OUT))
    assert plain.status_code == held.status_code == 200, held.text
    assert _shape(held.json()) == _shape(plain.json())
    plain_done, held_done = (
        wait_done(http, plain.json()["name"]),
        wait_done(http, held.json()["name"]),
    )
    assert "error" not in held_done, held_done

    answer = http.get(f"/v1beta/tunedModels/{held_id}/validationLosses")
    assert answer.status_code == 200, answer.text
    losses = answer.json()
    assert losses["exampleCount"] == 2
    assert [(v["epoch"], v["step"]) for v in losses["validationLosses"]] == [(1, 3), (2, 6)]
    assert all(v["meanLoss"] > 0 and v["computeTime"] for v in losses["validationLosses"])
    snapshots = held_done["metadata"]["snapshots"]
    assert [s["epoch"] for s in snapshots if s["step"] in (3, 6)] == [1, 2]
    assert http.get(f"/v1/tunedModels/{held_id}/validationLosses").json() == losses
    none = http.get(f"/v1beta/tunedModels/{plain_id}/validationLosses").json()
    assert none == {"exampleCount": 0, "validationLosses": []}

    # What Google's clients read has the same shape with or without validation data.
    assert _shape(held_done) == _shape(plain_done)
    for path in ("/v1beta/tunedModels/{}", "/v1beta/tunedModels/{}/operations"):
        with_data = http.get(path.format(held_id)).json()
        assert _shape(with_data) == _shape(http.get(path.format(plain_id)).json())
        assert "validation" not in json.dumps(with_data).lower()
    assert "validation" not in json.dumps(held_done).lower()


def test_an_unknown_models_losses_are_not_found(http):
    r = http.get("/v1beta/tunedModels/not-there/validationLosses")
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("validation", "words"),
    [
        (
            _dataset([{"textInput": "1", "output": "2"}, {"textInput": "3", "output": " "}]),
            ["validation_data row 2: 'output' is empty"],
        ),
        (_dataset([{"textInput": "1"}]), ["validation_data row 1: missing key 'output'"]),
        (
            _dataset([{"textInput": "x" * 40_001, "output": "2"}]),
            ["validation_data row 1: 'text_input' has 40001 characters", "limit of 40000"],
        ),
        (_dataset([{"textInput": 7, "output": "8"}]), ["validation_data row 1: 'text_input'"]),
        (_dataset([]), ["validation_data: no examples"]),
        ("held out", ["tuning_task.validation_data: expected an object"]),
        ({"examples": {"examples": "rows"}}, ["validation_data.examples.examples", "a list"]),
    ],
)
def test_bad_validation_data_is_refused_naming_it_and_the_row(http, validation, words):
    model_id = _uid("bad")
    r = _create(http, model_id, validation)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    for w in words:
        assert w in error["message"]
    assert "training_data" not in error["message"]
    assert http.get(f"/v1beta/tunedModels/{model_id}").status_code == 404  # nothing stored
