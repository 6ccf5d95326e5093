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


def need_llama_cpp() -> None:
    """llama-cpp-python, installed from the wheel cache (built once: tests/llama_cpp_wheel.py)."""
    from llama_cpp_wheel import ensure

    ensure()


@pytest.fixture(params=["torch", "llama.cpp"])
def server(request, tmp_path) -> ModelServer:
    """A generation server decoding with each engine in turn: what a caller sees is the same."""
    if request.param == "llama.cpp":
        need_llama_cpp()
    return ModelServer("8,64MiB", engine=request.param, cache_dir=tmp_path / "serving")


def torch_server(adapter_cache: str = "8,64MiB", **kwargs) -> ModelServer:
    """A server decoding with PyTorch only: the tests of its own adapters and weights."""
    return ModelServer(adapter_cache, engine="torch", **kwargs)


def greedy(max_tokens: int = 12, **kw) -> Sampling:
    values = dict(temperature=0.0, top_p=1.0, top_k=0, candidate_count=1)
    values.update(kw)
    return Sampling(max_output_tokens=max_tokens, **values)
