"""Serving fixtures: LoRA adapters over the tiny model, made directly with peft (fast).

The adapters are randomly initialised with large B matrices, so each one visibly changes what
the tiny model says; the tests that need a real tuning run make one through the service.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.serving import ModelServer, Sampling

TEMPLATE = "{input}\n"


def make_adapter(base_dir: Path, folder: Path, seed: int, rank: int = 4) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=rank, lora_alpha=16, target_modules="all-linear")
    peft_model = get_peft_model(model, config)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 2.0)
    peft_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def adapters(tmp_path_factory, tiny_model_dir) -> list[Path]:
    root = tmp_path_factory.mktemp("adapters")
    return [make_adapter(tiny_model_dir, root / f"adapter-{i}", seed=i) for i in range(4)]


@pytest.fixture()
def server() -> ModelServer:
    return ModelServer("8,64MiB")


def greedy(max_tokens: int = 12, **kw) -> Sampling:
    values = dict(temperature=0.0, top_p=1.0, top_k=0, candidate_count=1)
    values.update(kw)
    return Sampling(max_output_tokens=max_tokens, **values)
