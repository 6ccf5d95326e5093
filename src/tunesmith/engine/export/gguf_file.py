"""GGUF files for llama.cpp, Ollama and LM Studio, written with the ``gguf`` package.

Two kinds:

* a **model** (:func:`write_model`): every weight of the tuned model (adapter merged), 2-D
  weights as F16, BF16 or Q8_0 (or F32), norms as F32;
* a **LoRA adapter** (:func:`write_lora`): ``general.type=adapter``, ``adapter.type=lora``,
  ``adapter.lora.alpha``, and for each targeted weight ``<name>.lora_a`` ([rank, in]) and
  ``<name>.lora_b`` ([out, rank]) in F32; llama.cpp adds ``alpha / rank * B @ A``.

Tensor names come from the package's tensor name map. llama.cpp computes rotary embeddings
on interleaved pairs where transformers' Llama rotates halves, so for the ``llama`` family the
rows of the q and k projections are permuted within each head (pair ``i`` of a head takes the
rows ``i`` and ``i + head_dim/2``); transformers' GGUF loader undoes exactly that. Without it
the model answers with repetitions. A LoRA update's rows follow its weight's, so ``lora_b``
of q and k is permuted the same way.

Metadata: when the base came from a GGUF file (the packaged bases do), every key of that file
is kept, its ``tokenizer.*`` keys above all: rebuilding the vocabulary from the tokenizer
loses which tokens are control tokens (``<|im_start|>`` then splits into pieces) and
``add_bos_token``. Only what the tuning changed is rewritten: ``general.name``, the file type,
and the chat template when the tuned prompt differs from the base's (see :mod:`.templates`).
A base from a folder gets its vocabulary from ``tokenizer.json`` (GPT-2-style byte-level BPE)
through the package's vocab helpers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...errors import FailedPrecondition, InvalidArgument

if TYPE_CHECKING:  # torch loads on use: ``import tunesmith`` must stay quick
    import torch

# transformers model_type -> (GGUF architecture, whether q/k rows are permuted for llama.cpp)
ARCHITECTURES = {
    "llama": ("llama", True),
    "mistral": ("llama", True),
    "qwen2": ("qwen2", False),
}
QUANTIZATIONS = ("F16", "BF16", "Q8_0", "F32")
NOT_AVAILABLE = {
    "Q4_K_M": "the gguf package cannot quantise to Q4_K_M; export F16 and run llama.cpp's "
    "llama-quantize on it",
}
Progress = Callable[[int, int], None]  # (bytes written, bytes in all)


def gguf_architecture(config) -> tuple[str, bool]:
    """``(architecture, permute_qk)`` for a transformers config, or a clear error naming it."""
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise FailedPrecondition(
            f"architecture '{model_type}': the GGUF export does not know it "
            f"(it knows {', '.join(sorted(ARCHITECTURES))}); export 'merged' or 'adapter' instead"
        )
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    kind = rope.get("rope_type") or rope.get("type") or "default"
    if kind not in ("default", "linear"):
        raise FailedPrecondition(
            f"architecture '{model_type}' with '{kind}' rope scaling: the GGUF export does not "
            "know it; export 'merged' or 'adapter' instead"
        )
    return ARCHITECTURES[model_type]


def quantization_type(name: str):
    import gguf

    if name in NOT_AVAILABLE:
        raise InvalidArgument(f"quantization: {name} is not available: {NOT_AVAILABLE[name]}")
    if name not in QUANTIZATIONS:
        raise InvalidArgument(f"quantization: '{name}' is not one of {', '.join(QUANTIZATIONS)}")
    return gguf.GGMLQuantizationType[name]


def permute_rows(w, heads: int):
    """transformers' rotary layout (halves) to llama.cpp's (interleaved pairs), per head (a
    torch tensor or a numpy array)."""
    half = w.shape[0] // heads // 2
    return w.reshape(heads, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def folder_config(folder: Path):
    """A model folder's ``config.json`` as attributes (what the writer reads of a transformers
    config), without transformers, whose config classes load torch: the llama.cpp serving
    path reads it in a process that otherwise never imports torch."""
    import types

    try:
        return types.SimpleNamespace(**json.loads((Path(folder) / "config.json").read_text()))
    except (OSError, ValueError) as e:
        raise FailedPrecondition(f"{Path(folder).name}: cannot read config.json ({e})") from e


def _name_map(arch: str, blocks: int):
    import gguf

    kind = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    return gguf.get_tensor_name_map(kind, blocks)


def _qk_heads(name: str, config) -> int | None:
    if name.endswith(("q_proj.weight", "q_proj.bias", "q_proj")):
        return config.num_attention_heads
    if name.endswith(("k_proj.weight", "k_proj.bias", "k_proj")):
        return getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return None


def write_model(
    model,
    tokenizer_dir: Path,
    out: Path,
    quantization: str,
    *,
    name: str,
    chat_template: str,
    base_gguf: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """The whole model as one GGUF file at ``out``."""

    config = model.config
    arch, permute = gguf_architecture(config)
    qtype = quantization_type(quantization)
    names = _name_map(arch, config.num_hidden_layers)
    tensors: list[tuple[str, torch.Tensor, object]] = []
    tied = getattr(config, "tie_word_embeddings", False)
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp uses token_embd when there is no output tensor
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise FailedPrecondition(f"architecture '{arch}': no GGUF name for tensor {hf_name}")
        heads = _qk_heads(hf_name, config) if permute else None
        data = permute_rows(tensor, heads) if heads else tensor
        tensors.append((gguf_name, data, _tensor_type(data, qtype)))
    metadata = _model_metadata(config, arch, tokenizer_dir, base_gguf, quantization)
    metadata["general.name"] = _value(name, "STRING")
    if base_gguf is None or _string(metadata.get("tokenizer.chat_template")) != chat_template:
        metadata["tokenizer.chat_template"] = _value(chat_template, "STRING")
    return _write(out, arch, metadata, tensors, progress)


def write_lora(lora, config, out: Path, *, name: str, progress: Progress | None = None) -> Path:
    """A tuned model's LoRA adapter as a GGUF adapter over its base (see the module doc)."""
    import gguf

    arch, permute = gguf_architecture(config)
    names = _name_map(arch, config.num_hidden_layers)
    tensors = []
    for module, (a, b) in sorted(lora.layers.items()):
        gguf_name = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if gguf_name is None:
            raise FailedPrecondition(f"architecture '{arch}': no GGUF name for layer {module}")
        heads = _qk_heads(module, config) if permute else None
        b = permute_rows(b, heads) if heads else b
        f32 = gguf.GGMLQuantizationType.F32
        tensors.append((gguf_name + ".lora_a", a, f32))
        tensors.append((gguf_name + ".lora_b", b, f32))
    metadata = {
        "general.type": _value("adapter", "STRING"),
        "general.name": _value(name, "STRING"),
        "adapter.type": _value("lora", "STRING"),
        "adapter.lora.alpha": _value(float(lora.alpha), "FLOAT32"),
    }
    return _write(out, arch, metadata, tensors, progress)


# -- metadata ---------------------------------------------------------------------------


def _value(value, kind: str, sub: str | None = None):
    from gguf import GGUFValueType
    from gguf.gguf_writer import GGUFValue

    return GGUFValue(value, GGUFValueType[kind], GGUFValueType[sub] if sub else None)


def _string(v) -> str | None:
    if v is None:
        return None
    return v.value.decode() if isinstance(v.value, bytes) else v.value


def _harvest(arch: str, fill: Callable) -> dict:
    """The keys the package's writer helpers would write, without writing a file."""
    import gguf

    scratch = gguf.GGUFWriter(None, arch)
    fill(scratch)
    keys = dict(scratch.kv_data[0])
    keys.pop("general.architecture", None)
    return keys


def read_metadata(path: Path) -> dict:
    """Every key of a GGUF file (strings kept as their exact bytes)."""
    import gguf

    reader = gguf.GGUFReader(path)
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                value = [bytes(field.parts[i]) for i in field.data]
            else:
                value = [field.parts[i].tolist()[0] for i in field.data]
            out[key] = _value(value, "ARRAY", sub.name)
        elif kind == gguf.GGUFValueType.STRING:
            out[key] = _value(bytes(field.parts[field.data[0]]), "STRING")
        else:
            out[key] = _value(field.parts[field.data[0]].tolist()[0], kind.name)
    return out


def _model_metadata(config, arch, tokenizer_dir, base_gguf, quantization) -> dict:
    import gguf

    metadata = read_metadata(base_gguf) if base_gguf else {}
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rope = getattr(config, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))

    def arch_keys(w):
        w.add_context_length(config.max_position_embeddings)
        w.add_embedding_length(config.hidden_size)
        w.add_block_count(config.num_hidden_layers)
        w.add_feed_forward_length(config.intermediate_size)
        w.add_head_count(heads)
        w.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
        w.add_rope_freq_base(float(theta))
        w.add_layer_norm_rms_eps(float(config.rms_norm_eps))
        w.add_rope_dimension_count(head_dim)
        if head_dim != config.hidden_size // heads:
            w.add_key_length(head_dim)
            w.add_value_length(head_dim)
        w.add_vocab_size(config.vocab_size)
        if (rope.get("rope_type") or rope.get("type")) == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(float(rope["factor"]))

    for key, value in _harvest(arch, arch_keys).items():
        metadata.setdefault(key, value)  # the base file's own values win where it has them
    if base_gguf is None:
        metadata.update(_harvest(arch, lambda w: _vocab(w, tokenizer_dir, config.vocab_size)))
    file_type = {
        "F32": gguf.LlamaFileType.ALL_F32,
        "F16": gguf.LlamaFileType.MOSTLY_F16,
        "BF16": gguf.LlamaFileType.MOSTLY_BF16,
        "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[quantization]
    metadata["general.type"] = _value("model", "STRING")
    metadata["general.file_type"] = _value(int(file_type), "UINT32")
    metadata["general.quantization_version"] = _value(gguf.GGML_QUANT_VERSION, "UINT32")
    return metadata


def _vocab(w, tokenizer_dir: Path, vocab_size: int) -> None:
    """tokenizer.* keys from a folder's tokenizer.json (GPT-2-style byte-level BPE only)."""
    import gguf

    try:
        vocab = gguf.vocab.BpeVocab(Path(tokenizer_dir))
    except (FileNotFoundError, ValueError) as e:
        raise FailedPrecondition(
            f"tokenizer: the GGUF export builds byte-level BPE vocabularies only ({e}); name the "
            "base model as a .gguf file so the export keeps that file's own tokenizer"
        ) from None
    spec = json.loads((Path(tokenizer_dir) / "tokenizer.json").read_text())
    added = {t["content"]: t.get("special", False) for t in spec.get("added_tokens", [])}
    tokens: list[str] = []
    types = []
    for raw, _score, _kind in vocab.all_tokens():
        text = raw.decode() if isinstance(raw, bytes) else raw
        tokens.append(text)
        if text in added:
            types.append(gguf.TokenType.CONTROL if added[text] else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    for i in range(len(tokens), vocab_size):  # embeddings padded past the vocabulary
        tokens.append(f"[PAD{i}]")
        types.append(gguf.TokenType.UNUSED)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(_pre_tokenizer(spec.get("pre_tokenizer") or {}))
    w.add_token_list(tokens)
    w.add_token_types(types)
    gguf.SpecialVocab(Path(tokenizer_dir), load_merges=True, n_vocab=len(tokens)).add_to_gguf(
        w, quiet=True
    )


def _pre_tokenizer(spec: dict) -> str:
    """llama.cpp's name for how text is split before BPE: GPT-2's regex, SmolLM's digits then
    GPT-2's regex, else llama.cpp's default."""
    parts = spec.get("pretokenizers", [spec]) if spec.get("type") == "Sequence" else [spec]
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"  # llama.cpp's spelling; "gpt2" is refused as an unknown pre-tokenizer
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"
    return "default"


# -- tensors ----------------------------------------------------------------------------


def _tensor_type(data: torch.Tensor, qtype):
    """Norms and biases stay F32; a weight whose rows don't fill Q8_0's blocks gets F16."""
    import gguf

    if len(data.shape) < 2:
        return gguf.GGMLQuantizationType.F32
    if qtype == gguf.GGMLQuantizationType.Q8_0 and data.shape[-1] % 32:
        return gguf.GGMLQuantizationType.F16
    return qtype


def _encode(data: torch.Tensor | np.ndarray, qtype) -> np.ndarray:
    import gguf

    if isinstance(data, np.ndarray):  # a LoRA adapter's matrices (see .weights.read_lora)
        array = np.ascontiguousarray(data, dtype=np.float32)
    else:
        import torch

        array = data.detach().to(torch.float32).cpu().contiguous().numpy()
    return gguf.quants.quantize(array, qtype)


def _nbytes(shape, qtype) -> int:
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape[:-1], dtype=np.int64)) * (shape[-1] // block) * size


def _write(out: Path, arch: str, metadata: dict, tensors, progress: Progress | None) -> Path:
    """Header, metadata and tensor infos first, then each tensor as it is encoded, into a
    temporary name renamed at the end (a failed export leaves no half file behind)."""
    import gguf

    tmp = out.with_name(f"{out.name}.{os.getpid()}.partial")  # two processes may write it
    writer = gguf.GGUFWriter(tmp, arch)
    for key, v in metadata.items():
        writer.add_key_value(key, v.value, v.type, v.sub_type)
    sizes = []
    for name, data, qtype in tensors:
        shape = tuple(data.shape)
        sizes.append(_nbytes(shape, qtype))
        writer.add_tensor_info(name, shape, np.dtype(np.float32), sizes[-1], raw_dtype=qtype)
    total, done = sum(sizes), 0
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for (_name, data, qtype), size in zip(tensors, sizes, strict=True):
            writer.write_tensor_data(_encode(data, qtype))
            done += size
            if progress is not None:
                progress(done, total)
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return out
