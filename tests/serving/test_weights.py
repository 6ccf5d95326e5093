"""Serving weights kept in float16: half the memory, the answers of float32."""

from __future__ import annotations

import pytest
import torch

from tunesmith.serving.weights import WIDEN_BLOCK, HalfLinear, halve
from tunesmith.settings import get_settings

from .conftest import TEMPLATE, greedy, torch_server


def _matrix_bytes(model: torch.nn.Module) -> int:
    seen = {t.data_ptr(): t.numel() * t.element_size() for t in model.state_dict().values()}
    return sum(seen.values())


def test_float16_serving_holds_half_the_bytes_and_one_copy_of_a_tied_embedding(tiny_model_dir):
    as_trained = torch_server(weights="float32").base(tiny_model_dir).model
    served = torch_server().base(tiny_model_dir).model
    assert any(isinstance(m, HalfLinear) for m in served.modules())
    norms = sum(p.numel() * 4 for p in served.parameters())  # what stays float32
    assert _matrix_bytes(served) - norms == pytest.approx((_matrix_bytes(as_trained) - norms) / 2)
    if served.config.tie_word_embeddings:
        assert served.get_output_embeddings().weight is served.get_input_embeddings().weight


# The float16 product (1-2 rows), then widened weights: whole, or a block of rows at a time
# for a matrix over WIDEN_BLOCK elements (an output layer as large as a vocabulary).
@pytest.mark.parametrize("rows", [1, 2, 3, 40])
@pytest.mark.parametrize("outputs", [96, WIDEN_BLOCK // 64 * 2 + 37])
def test_a_half_linear_layer_computes_what_the_float32_one_does(rows, outputs):
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, outputs)
    x = torch.randn(2, rows, 64)  # batch, positions, features
    half = halve(torch.nn.Sequential(layer))[0]
    assert isinstance(half, HalfLinear)
    with torch.no_grad():
        torch.testing.assert_close(half(x), layer(x), rtol=0, atol=3e-3)
        assert half(x).dtype == torch.float32 and half(x).shape == (2, rows, outputs)


def test_float16_and_float32_serving_agree_on_the_tiny_model_with_adapters(
    tiny_model_dir, adapters
):
    half, full = torch_server("8"), torch_server("8", weights="float32")
    for adapter in (None, adapters[0]):
        answers = [
            s.generate(tiny_model_dir, TEMPLATE, "one two", greedy(6), adapter).candidates[0]
            for s in (half, full)
        ]
        assert answers[0].output == answers[1].output


def test_the_serving_weights_setting_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("TUNESMITH_SERVING_WEIGHTS", "Float32")
    assert get_settings().serving_weights == "float32"
    monkeypatch.setenv("TUNESMITH_SERVING_WEIGHTS", "int4")
    with pytest.raises(ValueError, match="TUNESMITH_SERVING_WEIGHTS: 'int4' is not one of"):
        get_settings()


@pytest.mark.slow
def test_the_packaged_model_answers_the_same_in_float16_and_float32(converted_base_models):
    from tunesmith.engine import base_models
    from tunesmith.settings import DEFAULT_BASE_MODEL

    spec = base_models.resolve(DEFAULT_BASE_MODEL, DEFAULT_BASE_MODEL)
    folder = base_models.materialize(spec, converted_base_models)
    prompts = ["What is the capital of France?", "List three fruits.", "Say hi"]
    answers = {
        weights: [
            torch_server(weights=weights).generate(folder, None, p, greedy(32)).candidates[0].output
            for p in prompts
        ]
        for weights in ("float16", "float32")
    }
    assert answers["float16"] == answers["float32"]
