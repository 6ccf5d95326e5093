"""Tiny models of other architectures, for tests of what happens where one is not supported.

A plain module (not a conftest: each test folder has its own ``conftest``), imported as
``from tiny_models import ...`` like ``llama_cpp_wheel``.
"""

from __future__ import annotations

from pathlib import Path


def tiny_model_of_architecture(tiny_dir: Path, folder: Path, architecture: str) -> Path:
    """The tiny model's tokenizer over an as tiny model of another transformers architecture
    (``"Phi3"``: ``Phi3Config`` and ``Phi3ForCausalLM``), e.g. one the GGUF writer lacks."""
    import torch
    import transformers
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    config = getattr(transformers, f"{architecture}Config")(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    getattr(transformers, f"{architecture}ForCausalLM")(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
