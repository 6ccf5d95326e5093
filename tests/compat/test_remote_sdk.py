"""tunesmith's own SDK in remote mode: the embedded flow over HTTP, same records and errors."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

import tunesmith as ts
from tunesmith.sdk.remote import RemoteClient

DATA = [{"text_input": str(i), "output": str(i + 1)} for i in range(6)]


@pytest.fixture()
def remote(server, home):
    ts.configure(api_endpoint=server.url, api_key="unused-on-an-open-server")
    yield server
    ts.configure()


def test_the_embedded_flow_runs_remotely(remote):
    model_id = f"remote-{uuid.uuid4().hex[:8]}"
    op = ts.create_tuned_model(
        source_model="models/text-bison-001",
        training_data=pd.DataFrame(DATA),
        id=model_id,
        display_name="remote",
        epoch_count=1,
        batch_size=2,
        learning_rate=0.001,
    )
    assert isinstance(op._client, RemoteClient)
    assert op.metadata.total_steps == 3
    metas = list(op.wait_bar(disable=True))
    assert metas[-1].completed_steps == 3
    model = op.result()
    assert isinstance(model, ts.TunedModel)
    assert model.state is ts.TunedModelState.ACTIVE
    assert model.tuning_task.hyperparameters.learning_rate == 0.001
    assert [s.step for s in model.tuning_task.snapshots] == [1, 2, 3]
    assert list(op.history["step"]) == [1, 2, 3]

    assert ts.get_tuned_model(model_id).display_name == "remote"
    assert model_id in [m.id for m in ts.list_tuned_models(page_size=1)]
    assert ts.update_tuned_model(model_id, {"description": "d"}).description == "d"
    assert [o.name for o in ts.list_operations(model_id)] == [op.name]
    assert ts.get_operation(op.name).metadata.completed_steps == 3

    result = ts.generate_text(
        model=f"tunedModels/{model_id}", prompt="3", temperature=0, max_output_tokens=4
    )
    assert isinstance(result.result, str)
    reply = ts.GenerativeModel(f"tunedModels/{model_id}").generate_content(
        "3", generation_config={"temperature": 0, "max_output_tokens": 4}
    )
    assert reply.text == result.result
    assert reply.usage_metadata["prompt_token_count"] > 0
    assert ts.count_text_tokens(f"tunedModels/{model_id}", "3")["token_count"] > 0
    assert any(m.name == "models/smollm2-135m-instruct" for m in ts.list_models())

    ts.delete_tuned_model(model_id)
    with pytest.raises(ts.NotFound):
        ts.get_tuned_model(model_id)


def test_typed_errors_are_the_same_as_embedded(remote):
    with pytest.raises(ts.NotFound):
        ts.get_tuned_model("tunedModels/not-there")
    with pytest.raises(ts.InvalidArgument, match="batch_size"):
        ts.create_tuned_model(
            source_model="models/text-bison-001", training_data=DATA, batch_size=0
        )
    model_id = f"dup-{uuid.uuid4().hex[:8]}"
    ts.create_tuned_model(source_model="models/text-bison-001", training_data=DATA, id=model_id)
    with pytest.raises(ts.AlreadyExists):
        ts.create_tuned_model(source_model="models/text-bison-001", training_data=DATA, id=model_id)
    with pytest.raises(ts.FailedPrecondition):
        # Still CREATING or just finished: either way a fresh, long job is not ACTIVE yet.
        op = ts.create_tuned_model(
            source_model="models/text-bison-001",
            training_data=DATA * 50,
            epoch_count=50,
            batch_size=1,
        )
        ts.generate_text(model=op.metadata.tuned_model, prompt="1")
    assert op.cancel() is True
    with pytest.raises(ts.errors.Cancelled):
        op.result(timeout=120)


def test_environment_variables_choose_remote_mode(server, home, monkeypatch):
    monkeypatch.setenv("TUNESMITH_API_ENDPOINT", server.url)
    ts.configure()
    assert any(m.name.startswith("models/") for m in ts.list_models())
    from tunesmith.sdk.clients import default_client

    assert isinstance(default_client(), RemoteClient)


def test_validation_data_reaches_the_server_and_comes_back_in_history(remote):
    held_out = pd.DataFrame({"text_input": ["20", "one"], "output": ["21", "two"]})
    op = ts.create_tuned_model(
        source_model="models/text-bison-001",
        training_data=DATA,
        validation_data=held_out,
        epoch_count=2,
        batch_size=2,
    )  # 6 examples: 6 steps, the epochs end at steps 3 and 6
    op.result()
    scored = op.history.dropna(subset=["validation_loss"])
    assert scored["step"].tolist() == [3, 6] and scored["epoch"].tolist() == [1, 2]
    assert op.validation_losses().example_count == 2
    with pytest.raises(ts.InvalidArgument, match="validation_data row 1: 'output' is empty"):
        ts.create_tuned_model(
            source_model="models/text-bison-001",
            training_data=DATA,
            validation_data=[{"text_input": "1", "output": ""}],
        )
