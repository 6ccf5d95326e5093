"""Exports of a tuned tiny model, proved by the consumers: transformers, peft, and the gguf
package's reader (llama.cpp itself runs on the packaged model, in test_real_model_exports.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tunesmith.engine.export import export
from tunesmith.engine.export.gguf_file import read_metadata
from tunesmith.engine.prompting import PromptFormat
from tunesmith.errors import FailedPrecondition, InvalidArgument

from .conftest import PROMPTS, TEMPLATE, hf_greedy, served

# float32 throughout: the merged weights differ from base + adapter by rounding only.
LOGIT_ATOL = 1e-4


def _logits(model, tokenizer, prompt: str) -> torch.Tensor:
    ids = tokenizer(TEMPLATE.replace("{input}", prompt), return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return model(input_ids=ids).logits[0]


@pytest.fixture(scope="module")
def exported(tuned_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    return {
        (fmt, q): export(tuned_tiny, fmt, root / f"{fmt}-{q}", q)
        for fmt, q in [
            ("adapter", None),
            ("merged", None),
            ("gguf", "F32"),
            ("gguf", "Q8_0"),
            ("gguf-lora", "F32"),
        ]
    }


def test_merged_folder_and_peft_adapter_answer_as_tunesmith_serves(tuned_tiny, exported):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ours = served(tuned_tiny)
    merged_dir = exported[("merged", None)].folder
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    assert hf_greedy(merged, tokenizer) == ours

    adapter_dir = exported[("adapter", None)].folder
    assert json.loads((adapter_dir / "adapter_config.json").read_text())[
        "base_model_name_or_path"
    ] == str(tuned_tiny.base_dir)
    base = AutoModelForCausalLM.from_pretrained(tuned_tiny.base_dir)
    with_adapter = PeftModel.from_pretrained(base, adapter_dir).eval()
    adapter_tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    assert hf_greedy(with_adapter, adapter_tokenizer) == ours
    for prompt in PROMPTS:
        torch.testing.assert_close(
            _logits(merged, tokenizer, prompt),
            _logits(with_adapter, tokenizer, prompt),
            rtol=0,
            atol=LOGIT_ATOL,
        )
    # The adapter matters: the base alone answers otherwise.
    plain = AutoModelForCausalLM.from_pretrained(tuned_tiny.base_dir).eval()
    assert hf_greedy(plain, tokenizer) != ours


def test_every_export_carries_the_prompt_it_was_tuned_on(tuned_tiny, exported):
    from transformers import AutoTokenizer

    for fmt in ("adapter", "merged"):
        tokenizer = AutoTokenizer.from_pretrained(exported[(fmt, None)].folder)
        prompt = PromptFormat(TEMPLATE, tokenizer).prompt("one two")
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": "one two"}], tokenize=False, add_generation_prompt=True
        )
        assert rendered == prompt == "one two\n"
    modelfile = (exported[("gguf", "F32")].folder / "Modelfile").read_text()
    assert "FROM ./tiny-tuned-F32.gguf\n" in modelfile
    assert 'PARAMETER stop "<eos>"' in modelfile and "PARAMETER temperature 0.5" in modelfile
    # Ollama renders a lone user message through the user branch of TEMPLATE.
    template = modelfile.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    user_turn = template.split('{{ if eq .Role "user" }}', 1)[1].split("{{ else if", 1)[0]
    assert user_turn.replace("{{ .Content }}", "one two") == "one two\n"
    lora_modelfile = (exported[("gguf-lora", "F32")].folder / "Modelfile").read_text()
    assert "FROM ./tiny-F32.gguf\nADAPTER ./tiny-tuned-lora.gguf\n" in lora_modelfile


def test_gguf_loads_back_in_transformers_with_the_same_logits(tuned_tiny, exported):
    """transformers' GGUF loader undoes llama.cpp's q/k row order: equal logits at F32 show
    the names, the permutation and the vocabulary are right."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_dir = exported[("merged", None)].folder
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    f32 = exported[("gguf", "F32")]
    loaded = AutoModelForCausalLM.from_pretrained(f32.folder, gguf_file=f32.main_file.name).eval()
    gguf_tokenizer = AutoTokenizer.from_pretrained(f32.folder, gguf_file=f32.main_file.name)
    for prompt in PROMPTS:
        text = TEMPLATE.replace("{input}", prompt)
        assert gguf_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
        torch.testing.assert_close(
            _logits(loaded, tokenizer, prompt),
            _logits(merged, tokenizer, prompt),
            rtol=0,
            atol=1e-5,
        )
    assert hf_greedy(loaded, gguf_tokenizer) == served(tuned_tiny)
    q8 = exported[("gguf", "Q8_0")]
    quantized = AutoModelForCausalLM.from_pretrained(q8.folder, gguf_file=q8.main_file.name)
    assert q8.main_file.stat().st_size < f32.main_file.stat().st_size / 2.5
    # Q8_0 rounds every weight to 8 bits: on this tiny random model at least 6 of the 8
    # greedy answers stay the same.
    answers = hf_greedy(quantized.eval(), tokenizer)
    same = sum(a == b for a, b in zip(answers, served(tuned_tiny), strict=True))
    assert same >= 6, (answers, served(tuned_tiny))


def test_gguf_lora_is_exactly_the_update_from_base_to_tuned(tuned_tiny, exported, tmp_path):
    import gguf

    folder = exported[("gguf-lora", "F32")].folder
    lora = gguf.GGUFReader(folder / "tiny-tuned-lora.gguf")
    base = {t.name: np.array(t.data) for t in gguf.GGUFReader(folder / "tiny-F32.gguf").tensors}
    tuned_file = exported[("gguf", "F32")].main_file
    tuned = {t.name: np.array(t.data) for t in gguf.GGUFReader(tuned_file).tensors}
    meta = read_metadata(folder / "tiny-tuned-lora.gguf")
    assert meta["general.type"].value == b"adapter" and meta["adapter.type"].value == b"lora"
    alpha = meta["adapter.lora.alpha"].value
    pairs = {t.name: np.array(t.data) for t in lora.tensors}
    targets = sorted(n.removesuffix(".lora_a") for n in pairs if n.endswith(".lora_a"))
    assert len(targets) == 14 and "blk.0.attn_q.weight" in targets  # 7 linears x 2 layers
    for name in targets:
        a, b = pairs[name + ".lora_a"], pairs[name + ".lora_b"]
        update = alpha / a.shape[0] * (b @ a)
        np.testing.assert_allclose(base[name] + update, tuned[name], rtol=0, atol=1e-5)
    changed = [n for n in tuned if not np.array_equal(tuned[n], base[n])]
    assert sorted(changed) == targets


def test_the_base_ggufs_metadata_is_kept(tuned_tiny, exported, tmp_path):
    import dataclasses

    original = exported[("gguf-lora", "F32")].folder / "tiny-F32.gguf"
    source = dataclasses.replace(tuned_tiny, base_gguf=original)
    out = export(source, "gguf", tmp_path / "kept", "Q8_0")
    before, after = read_metadata(original), read_metadata(out.main_file)
    rewritten = {"general.name", "general.file_type"}
    for key, value in before.items():
        if key not in rewritten:
            assert after[key].value == value.value, key
    assert after["general.name"].value == b"Tiny tuned"
    assert after["general.file_type"].value == int(gguf_file_type("MOSTLY_Q8_0"))


def gguf_file_type(name: str) -> int:
    import gguf

    return int(gguf.LlamaFileType[name])


def test_what_cannot_be_exported_is_refused_naming_it(
    tuned_tiny, fully_tuned_tiny, tmp_path, tiny_model_dir
):
    with pytest.raises(InvalidArgument, match="format: 'onnx'"):
        export(tuned_tiny, "onnx", tmp_path / "x")
    with pytest.raises(InvalidArgument, match="quantization: Q4_K_M is not available"):
        export(tuned_tiny, "gguf", tmp_path / "x", "Q4_K_M")
    with pytest.raises(InvalidArgument, match="quantization: applies to gguf and gguf-lora"):
        export(tuned_tiny, "merged", tmp_path / "x", "Q8_0")
    with pytest.raises(FailedPrecondition, match="fully tuned.*'adapter'"):
        export(fully_tuned_tiny, "adapter", tmp_path / "x")
    gpt2 = _tiny_gpt2(tmp_path / "gpt2", tiny_model_dir)
    import dataclasses

    with pytest.raises(FailedPrecondition, match="architecture 'gpt2'"):
        export(dataclasses.replace(fully_tuned_tiny, tuned_dir=gpt2), "gguf", tmp_path / "x")
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_a_fully_tuned_model_exports_merged_and_gguf(fully_tuned_tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ours = served(fully_tuned_tiny)
    merged = export(fully_tuned_tiny, "merged", tmp_path / "merged").folder
    model = AutoModelForCausalLM.from_pretrained(merged).eval()
    assert hf_greedy(model, AutoTokenizer.from_pretrained(merged)) == ours
    gguf_export = export(fully_tuned_tiny, "gguf", tmp_path / "gguf", "F32")
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf_export.folder, gguf_file=gguf_export.main_file.name
    ).eval()
    assert hf_greedy(loaded, AutoTokenizer.from_pretrained(merged)) == ours


def _tiny_gpt2(folder, tokenizer_dir):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
