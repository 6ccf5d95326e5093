"""A tuned model's record carries the learning rate its run uses, never a blank "default":
the service resolves it once (the method's default, times a multiplier) and every surface
(the SDK's record, the HTTP API, ``tunesmith models show``) shows that number."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import tunesmith as ts
from tunesmith.api import create_app
from tunesmith.cli import app as cli
from tunesmith.jobs.worker import build_recipe
from tunesmith.service import CreateTunedModelRequest
from tunesmith.settings import get_settings
from tunesmith.types import TuningExample

EXAMPLES = [TuningExample(str(i), str(i + 1)) for i in range(6)]


@pytest.mark.parametrize(
    ("method", "learning_rate", "multiplier", "used"),
    [
        ("lora", None, None, 0.002),  # LoRA's default
        ("full", None, None, 5e-05),  # full tuning's default
        ("lora", None, 0.5, 0.001),  # Google's multiplier scales the method's default
        ("full", None, 3.0, 0.00015),
        ("lora", 0.01, None, 0.01),  # a rate given is the rate used
    ],
)
def test_the_record_holds_the_rate_the_run_uses(service, method, learning_rate, multiplier, used):
    op = service.tuning.create_tuned_model(
        CreateTunedModelRequest(
            source_model="models/text-bison-001",
            examples=EXAMPLES,
            id="rate",
            method=method,
            learning_rate=learning_rate,
            learning_rate_multiplier=multiplier,
            epoch_count=1,
            batch_size=2,
        )
    )
    hp = service.tuning.get_tuned_model(op.metadata.tuned_model).tuning_task.hyperparameters
    assert hp.learning_rate == used
    assert hp.learning_rate_multiplier is None  # already applied: the rate is the whole truth
    job = service.store.jobs.claim("test-worker", lease_seconds=600)
    assert job is not None and job.model.name == "tunedModels/rate"
    recipe = build_recipe(service.settings, service.store, job)
    assert recipe.peak_learning_rate == used  # the optimizer's rate is the recorded one


def test_sdk_http_and_cli_show_the_default_rate(home, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_model_dir))
    op = ts.create_tuned_model(
        source_model="models/text-bison-001",
        training_data=[{"text_input": e.text_input, "output": e.output} for e in EXAMPLES],
        id="no-rate-given",
        epoch_count=1,
        batch_size=2,
    )
    model = op.result(timeout=300)
    assert model.state is ts.TunedModelState.ACTIVE
    assert model.tuning_task.hyperparameters.learning_rate == 0.002
    sdk_record = ts.get_tuned_model("tunedModels/no-rate-given")
    assert sdk_record.tuning_task.hyperparameters.learning_rate == 0.002

    with TestClient(create_app(get_settings(), worker=False)) as http:
        got = http.get("/v1beta/tunedModels/no-rate-given")
        assert got.status_code == 200, got.text
        assert got.json()["tuningTask"]["hyperparameters"]["learningRate"] == 0.002
        # Google's multiplier is applied and recorded as the rate, never written back: the
        # old SDK's dataclasses crash on learningRateMultiplier.
        body = {
            "baseModel": "models/text-bison-001",
            "tuningTask": {
                "hyperparameters": {"epochCount": 1, "batchSize": 2, "learningRateMultiplier": 5},
                "trainingData": {"examples": {"examples": [{"textInput": "1", "output": "2"}]}},
            },
        }
        created = http.post("/v1beta/tunedModels?tunedModelId=times-five", json=body)
        assert created.status_code == 200, created.text
        got = http.get("/v1beta/tunedModels/times-five")
        assert got.json()["tuningTask"]["hyperparameters"]["learningRate"] == 0.01
        assert "learningRateMultiplier" not in got.text
        http.post(f"/v1beta/{created.json()['name']}:cancel")

    runner = CliRunner()
    shown = runner.invoke(cli, ["models", "show", "no-rate-given"])
    assert shown.exit_code == 0, shown.output
    line = next(x for x in shown.stdout.splitlines() if x.startswith("learning rate"))
    assert line.split()[-1] == "0.002", line
    as_json = json.loads(runner.invoke(cli, ["models", "show", "no-rate-given", "--json"]).stdout)
    assert as_json["tunedModel"]["tuningTask"]["hyperparameters"]["learningRate"] == 0.002
