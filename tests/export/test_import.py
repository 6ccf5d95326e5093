"""``tunesmith models import``: a peft LoRA adapter trained elsewhere becomes a tuned model,
served like any other; one that does not fit its base is refused, naming why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.cli._common import OK, USAGE
from tunesmith.errors import AlreadyExists, InvalidArgument
from tunesmith.types import GenerationConfig, TunedModelState

GREEDY = GenerationConfig(temperature=0, max_output_tokens=8)
PROMPTS = ["3", "one two", "hello world"]


def peft_adapter(base_dir: Path, folder: Path, seed: int = 0) -> Path:
    """A LoRA adapter made with peft alone (as another tool would), big enough to matter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 2.0)
    peft_model.save_pretrained(folder)
    return folder


def other_model(folder: Path, tokenizer_dir: Path) -> Path:
    """A Llama-shaped model of another width: an adapter for it does not fit the tiny one."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_an_imported_adapter_is_served_and_exported_like_a_tuned_one(
    service, tiny_model_dir, tmp_path
):
    from tunesmith.serving import ModelServer, Sampling

    folder = peft_adapter(tiny_model_dir, tmp_path / "from-elsewhere")
    model = service.imports.import_adapter(folder, str(tiny_model_dir), "imported", "Imported")
    assert model.state is TunedModelState.ACTIVE and model.base_model == str(tiny_model_dir)
    assert service.tuning.get_tuned_model("tunedModels/imported").display_name == "Imported"
    assert service.tuning.list_operations("tunedModels/imported") == []

    greedy = Sampling(temperature=0.0, top_p=1.0, top_k=0, candidate_count=1, max_output_tokens=8)
    server = ModelServer("8")
    for prompt in PROMPTS:
        ours = service.generation.generate("tunedModels/imported", prompt, GREEDY)
        direct = server.generate(tiny_model_dir, None, prompt, greedy, folder)
        plain = server.generate(tiny_model_dir, None, prompt, greedy)
        assert ours.candidates[0].output == direct.candidates[0].output
    assert ours.candidates[0].output != plain.candidates[0].output  # the adapter is applied

    out = service.exports.export_tuned_model("tunedModels/imported", "adapter", tmp_path / "x")
    assert (out.folder / "adapter_model.safetensors").read_bytes() == (
        folder / "adapter_model.safetensors"
    ).read_bytes()
    with pytest.raises(AlreadyExists, match="tunedModels/imported already exists"):
        service.imports.import_adapter(folder, str(tiny_model_dir), "imported")
    service.tuning.delete_tuned_model("tunedModels/imported")
    assert not any(service.settings.adapters_dir.glob("imported-*"))


def test_an_adapter_that_does_not_fit_is_refused_naming_why(service, tiny_model_dir, tmp_path):
    imports = service.imports
    wide = other_model(tmp_path / "wide", tiny_model_dir)
    misfit = peft_adapter(wide, tmp_path / "for-wide")
    with pytest.raises(
        InvalidArgument, match=r"adapter: model.layers.0.mlp.down_proj is \[32, 64\]"
    ):
        imports.import_adapter(misfit, str(tiny_model_dir), "misfit")
    with pytest.raises(InvalidArgument, match="is not a peft adapter folder"):
        imports.import_adapter(tmp_path / "nothing-here", str(tiny_model_dir), "empty")
    with pytest.raises(InvalidArgument, match="tuned_model_id: 'Bad Id'"):
        imports.import_adapter(misfit, str(tiny_model_dir), "Bad Id")
    with pytest.raises(InvalidArgument, match="base_model: base model '/nowhere/at-all' not found"):
        imports.import_adapter(misfit, "/nowhere/at-all", "x")
    dora = peft_adapter(tiny_model_dir, tmp_path / "dora")
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(InvalidArgument, match="LoRA option use_dora"):
        imports.import_adapter(dora, str(tiny_model_dir), "dora")
    assert service.tuning.list_tuned_models()[0] == []
    assert not any(service.settings.adapters_dir.glob("imported-*"))


def test_the_cli_imports_an_adapter(service, tiny_model_dir, tmp_path):
    folder = peft_adapter(tiny_model_dir, tmp_path / "cli-adapter")
    runner = CliRunner()
    args = ["models", "import", str(folder), "--base", str(tiny_model_dir), "--id", "from-cli"]
    result = runner.invoke(app, args)
    assert result.exit_code == OK, result.output
    assert "imported tunedModels/from-cli" in result.stderr
    answer = runner.invoke(app, ["generate", "from-cli", "3", "--temperature", "0"])
    assert answer.exit_code == OK, answer.output
    again = runner.invoke(app, args)
    assert again.exit_code == USAGE and "already exists" in again.stderr
    remote = runner.invoke(app, [*args[:-1], "other", "--endpoint", "http://127.0.0.1:9"])
    assert remote.exit_code == USAGE and "on this machine" in remote.stderr
