"""The serving LoRA arithmetic against peft's own, and adapters it must refuse."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tunesmith.errors import FailedPrecondition
from tunesmith.serving.lora import read_adapter

from .conftest import TEMPLATE, greedy, torch_server


def test_mixed_rows_get_the_same_logits_as_peft_one_adapter_at_a_time(tiny_model_dir, adapters):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    server = torch_server("8", weights="float32")  # the arithmetic, at training precision
    base = server.base(tiny_model_dir)
    choices = [adapters[0], None, adapters[1], adapters[0], adapters[2]]
    weights = [None if a is None else base.cache.acquire(a).weights for a in choices]
    ids = torch.randint(5, 200, (len(choices), 7), generator=torch.Generator().manual_seed(0))
    base.cache.batch.begin(weights)
    with torch.inference_mode():
        mixed = base.model(input_ids=ids).logits
    base.cache.batch.end()
    for row, adapter in enumerate(choices):
        reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        if adapter is not None:
            reference = PeftModel.from_pretrained(reference, adapter)
        with torch.inference_mode():
            expected = reference.eval()(input_ids=ids[row : row + 1]).logits[0]
        # float32 rounding of the large random LoRA terms reaches ~1e-4 of the logits' scale
        # (about 4) over seeds; a row given another adapter, or none, is off by O(1).
        torch.testing.assert_close(mixed[row], expected, rtol=1e-4, atol=1e-3)


def test_a_served_adapter_answers_like_peft_generate(tiny_model_dir, adapters):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    server = torch_server("8")
    ours = server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(8), adapters[3])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapters[3]).eval()
    ids = tokenizer("one two\n", add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = model.generate(input_ids=ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
    theirs = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert ours.candidates[0].output == theirs


@pytest.mark.parametrize(
    "change, message",
    [
        ({"use_dora": True}, "use_dora is not served"),
        ({"peft_type": "IA3"}, "IA3 is not LoRA"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save is not served"),
    ],
)
def test_adapters_using_other_peft_features_are_refused(tmp_path, adapters, change, message):
    folder = tmp_path / "odd"
    shutil.copytree(adapters[0], folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(FailedPrecondition, match=message):
        read_adapter(folder, "odd")


def test_an_adapter_for_another_architecture_is_refused(tmp_path, tiny_model_dir, adapters):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "elsewhere"
    shutil.copytree(adapters[0], folder)
    tensors = load_file(folder / "adapter_model.safetensors")
    renamed = {k.replace("self_attn.q_proj", "attn.c_attn"): v for k, v in tensors.items()}
    save_file(renamed, folder / "adapter_model.safetensors")
    server = torch_server("8")
    with pytest.raises(FailedPrecondition, match="attn.c_attn, which the base model lacks"):
        server.generate(tiny_model_dir, TEMPLATE, "one", greedy(2), folder)
