"""Unmodified google-generativeai 0.8.6 (REST transport) against tunesmith: only configure()
changes, as in the seed's SDK flow."""

from __future__ import annotations

import time
import uuid

import pytest

genai = pytest.importorskip("google.generativeai")
from google.ai import generativelanguage_v1beta as glm  # noqa: E402
from google.api_core import exceptions  # noqa: E402
from google.generativeai import client as genai_client  # noqa: E402

DATA = [{"text_input": str(i), "output": str(i + 1)} for i in range(6)]


@pytest.fixture()
def configured(server):
    genai.configure(
        api_key="any-key",
        transport="rest",
        client_options={"api_endpoint": server.url},
    )
    yield server
    genai_client._client_manager.clients.clear()


def _uid(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _tuned(model_id: str, **kwargs):
    op = genai.create_tuned_model(
        source_model="models/text-bison-001",
        training_data=DATA,
        id=model_id,
        epoch_count=1,
        batch_size=2,
        learning_rate=0.001,
        **kwargs,
    )
    return op


def test_create_wait_bar_result_get_and_generate(configured):
    model_id = _uid("old-sdk")
    op = _tuned(model_id, display_name="old sdk", description="numbers")
    assert op.metadata.total_steps == 3
    seen = list(op.wait_bar(disable=True))
    assert seen and all(m.total_steps == 3 for m in seen)
    model = op.result()
    assert model.name == f"tunedModels/{model_id}"
    assert model.state == glm.TunedModel.State.ACTIVE
    assert model.tuning_task.hyperparameters.batch_size == 2
    assert [s["step"] for s in model.tuning_task.snapshots] == [1, 2, 3]

    got = genai.get_tuned_model(f"tunedModels/{model_id}")
    assert got.display_name == "old sdk" and got.description == "numbers"

    gm = genai.GenerativeModel(f"tunedModels/{model_id}")
    config = genai.GenerationConfig(temperature=0, max_output_tokens=4)
    text = gm.generate_content("3", generation_config=config).text
    streamed = gm.generate_content("3", generation_config=config, stream=True)
    chunks = [c.text for c in streamed]
    assert chunks and "".join(chunks) == text

    text_client = glm.TextServiceClient(
        transport="rest", client_options={"api_endpoint": configured.url, "api_key": "any-key"}
    )
    completion = text_client.generate_text(
        model=f"tunedModels/{model_id}", prompt={"text": "3"}, temperature=0, max_output_tokens=4
    )
    assert completion.candidates[0].output == text


def test_create_without_an_id(configured):
    op = genai.create_tuned_model(
        source_model="models/text-bison-001",
        training_data=DATA,
        display_name="no id",
        epoch_count=1,
    )
    assert op.name.startswith("tunedModels/no-id-")
    assert op.result().state == glm.TunedModel.State.ACTIVE


def test_list_with_paging_update_and_delete(configured):
    ids = [_uid("paged") for _ in range(3)]
    for model_id in ids:
        _tuned(model_id).result()
    listed = [m.name for m in genai.list_tuned_models(page_size=2)]
    assert {f"tunedModels/{i}" for i in ids} <= set(listed)
    assert len(listed) == len(set(listed))

    updated = genai.update_tuned_model(f"tunedModels/{ids[0]}", {"description": "changed"})
    assert updated.description == "changed"
    assert genai.get_tuned_model(f"tunedModels/{ids[0]}").description == "changed"

    genai.delete_tuned_model(f"tunedModels/{ids[1]}")
    with pytest.raises(exceptions.NotFound):
        genai.get_tuned_model(f"tunedModels/{ids[1]}")


def test_exceptions_for_a_missing_model_and_a_duplicate_id(configured):
    with pytest.raises(exceptions.NotFound):
        genai.get_tuned_model("tunedModels/does-not-exist")
    model_id = _uid("twice")
    _tuned(model_id)
    with pytest.raises(exceptions.Conflict, match="already exists"):
        _tuned(model_id)
    with pytest.raises(exceptions.BadRequest, match="row 2"):
        genai.create_tuned_model(
            source_model="models/text-bison-001",
            training_data=[{"text_input": "1", "output": "2"}, {"text_input": "3", "output": " "}],
        )


def test_operations_client_get_list_and_cancel(configured):
    ops = genai_client.get_default_operations_client()
    model_id = _uid("ops")
    op = genai.create_tuned_model(
        source_model="models/text-bison-001",
        training_data=DATA * 50,
        id=model_id,
        epoch_count=50,
        batch_size=1,
    )
    got = ops.get_operation(op.name)
    assert got.name == op.name
    listed = list(ops.list_operations(name=f"tunedModels/{model_id}", filter_=""))
    assert [o.name for o in listed] == [op.name]
    ops.cancel_operation(op.name)
    deadline = time.monotonic() + 120
    while not ops.get_operation(op.name).done and time.monotonic() < deadline:
        time.sleep(0.2)
    final = ops.get_operation(op.name)
    assert final.done and final.error.code == 1
    assert genai.get_tuned_model(f"tunedModels/{model_id}").state == glm.TunedModel.State.FAILED
