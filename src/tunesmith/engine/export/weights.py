"""A tuned model's weights: read as tunesmith saved them, written as a peft adapter folder or
as a merged Hugging Face folder.

A LoRA-tuned model is a peft adapter folder (``adapter_config.json``,
``adapter_model.safetensors``, ``tunesmith_prompt.json``) over a base folder; a fully tuned
model is a whole transformers folder of its own. Merging adds ``scale * B @ A`` to each
targeted linear weight in float32, the same arithmetic tunesmith's serving applies per row
(:mod:`tunesmith.serving.lora`), so the merged model answers as the served one does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
from safetensors import SafetensorError

from ...errors import FailedPrecondition

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PROMPT_FILE = "tunesmith_prompt.json"

_PREFIX = "base_model.model."  # peft's prefix on saved keys
# peft options that change LoRA's arithmetic; tunesmith trains none of them.
_UNSUPPORTED: dict[str, object] = {
    "use_dora": False,
    "fan_in_fan_out": False,
    "modules_to_save": None,
    "alpha_pattern": {},
    "trainable_token_indices": None,
}


@dataclasses.dataclass
class LoraWeights:
    """A peft LoRA adapter: per target module (``model.layers.0.self_attn.q_proj``), ``A`` as
    [rank, in] and ``B`` as [out, rank], unscaled; the update is ``scale * B @ A``."""

    config: dict
    layers: dict[str, tuple[np.ndarray, np.ndarray]]  # float32
    rank: int
    scale: float

    @property
    def alpha(self) -> float:
        """The alpha that gives ``scale`` as ``alpha / rank`` (llama.cpp's rule)."""
        return self.scale * self.rank


def check_lora_config(config: dict, folder: Path, use: str, *, one_rank: bool = False) -> None:
    """Refuse an adapter that is not plain LoRA: its weights would be ``use``d (served,
    exported) with the wrong arithmetic. ``one_rank``: the reader keeps one rank and scale for
    the whole adapter (llama.cpp's GGUF LoRA), so per-layer ranks are refused too."""
    if config.get("peft_type", "LORA") != "LORA":
        raise FailedPrecondition(f"adapter {folder.name}: {config['peft_type']} is not LoRA")
    refused = {**_UNSUPPORTED, "rank_pattern": {}} if one_rank else _UNSUPPORTED
    for key, off in refused.items():
        if config.get(key) not in (off, None, {}, [], False):
            raise FailedPrecondition(f"adapter {folder.name}: LoRA option {key} is not {use}")


def read_lora(folder: Path) -> LoraWeights:
    """The adapter in ``folder`` as float32 numpy arrays (read without torch: the llama.cpp
    serving path converts adapters in a process that never imports it)."""
    folder = Path(folder)
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
        tensors = _read_float32(folder / ADAPTER_WEIGHTS)
    except (OSError, ValueError, SafetensorError) as e:
        raise FailedPrecondition(f"adapter {folder.name}: cannot read it ({e})") from e
    check_lora_config(config, folder, "exported", one_rank=True)
    layers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            if ".lora_B." not in key:
                raise FailedPrecondition(f"adapter {folder.name}: unexpected weight {key}")
            continue
        module = key.removeprefix(_PREFIX).removesuffix(".lora_A.weight")
        b = tensors.get(key.replace(".lora_A.", ".lora_B."))
        if b is None or a.ndim != 2 or b.ndim != 2 or b.shape[1] != a.shape[0]:
            raise FailedPrecondition(f"adapter {folder.name}: LoRA weights of {module} don't match")
        layers[module] = (a, b)
    if not layers:
        raise FailedPrecondition(f"adapter {folder.name}: no LoRA weights in {ADAPTER_WEIGHTS}")
    ranks = {a.shape[0] for a, _ in layers.values()}
    if len(ranks) != 1:
        raise FailedPrecondition(f"adapter {folder.name}: layers of different ranks {ranks}")
    rank = ranks.pop()
    alpha = float(config.get("lora_alpha", 8))
    scale = alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)
    return LoraWeights(config, layers, rank, scale)


# safetensors dtypes an adapter may hold, as numpy reads them; bfloat16 (which numpy lacks) is
# read as its 16 bits and widened to float32 below.
_FLOAT_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16}


def _read_float32(path: Path) -> dict[str, np.ndarray]:
    from safetensors import deserialize

    out = {}
    for key, info in deserialize(path.read_bytes()):
        kind = _FLOAT_DTYPES.get(info["dtype"])
        if kind is None:
            raise ValueError(f"weight {key} is {info['dtype']}, not a float")
        array = np.frombuffer(info["data"], dtype=kind).reshape(info["shape"])
        if info["dtype"] == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        out[key] = array.astype(np.float32)
    return out


def load_tuned(model_dir: Path, adapter_dir: Path | None):
    """A model folder in float32, with the adapter (if any) merged into its weights."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" is not for the exporter's terminal
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, use_safetensors=True
    )
    model.eval().requires_grad_(False)
    if adapter_dir is None:
        return model
    lora, name = read_lora(adapter_dir), Path(adapter_dir).name
    tied = getattr(model.config, "tie_word_embeddings", False)
    with torch.no_grad():
        for module, (a, b) in lora.layers.items():
            if tied and module == "lm_head":
                raise FailedPrecondition(
                    f"adapter {name}: it changes lm_head, which this base "
                    "shares with its token embeddings"
                )
            try:
                weight = model.get_parameter(f"{module}.weight")
            except AttributeError:
                raise FailedPrecondition(
                    f"adapter {name}: the base has no layer {module}"
                ) from None
            if tuple(weight.shape) != (b.shape[0], a.shape[1]):
                raise FailedPrecondition(
                    f"adapter {name}: {module} is {tuple(weight.shape)} in "
                    f"the base, the adapter expects {(b.shape[0], a.shape[1])}"
                )
            weight.add_(torch.from_numpy(lora.scale * (b @ a)))
    return model


def load_tokenizer(base_dir: Path, tuned_dir: Path):
    from transformers import AutoTokenizer

    folder = tuned_dir if (Path(tuned_dir) / "tokenizer_config.json").is_file() else base_dir
    return AutoTokenizer.from_pretrained(folder)


def write_merged(model, tokenizer, chat_template: str, prompt_file: Path | None, out: Path):
    """A transformers folder: config, generation config, safetensors, tokenizer with the
    chat template, and tunesmith's prompt file."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the caller reports progress its own way
    model.save_pretrained(out, safe_serialization=True)
    _write_tokenizer(tokenizer, chat_template, out)
    if prompt_file is not None and prompt_file.is_file():
        shutil.copyfile(prompt_file, out / PROMPT_FILE)


def write_adapter(
    tuned_dir: Path,
    tokenizer,
    chat_template: str,
    base_reference: str,
    readme: str,
    out: Path,
) -> None:
    """The peft adapter as tunesmith saved it, naming ``base_reference`` as its base, with
    the tokenizer (and chat template) it is used with."""
    config = json.loads((tuned_dir / ADAPTER_CONFIG).read_text())
    config["base_model_name_or_path"] = base_reference
    (out / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(tuned_dir / ADAPTER_WEIGHTS, out / ADAPTER_WEIGHTS)
    if (tuned_dir / PROMPT_FILE).is_file():
        shutil.copyfile(tuned_dir / PROMPT_FILE, out / PROMPT_FILE)
    _write_tokenizer(tokenizer, chat_template, out)
    (out / "README.md").write_text(readme)


def _write_tokenizer(tokenizer, chat_template: str, out: Path) -> None:
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(out)
