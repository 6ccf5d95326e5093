"""A GGUF file into a safetensors folder, directly: a first run's base model in seconds.

transformers loads a GGUF file too (``from_pretrained(..., gguf_file=...)``), and that stays
the fallback, but on SmolLM2-135M it spends ~30 CPU-seconds: it parses the file's metadata
with ``gguf.GGUFReader`` three times (config, tokenizer, weights; a numpy view per string of
the 49k-token vocabulary, ~5 s each) and rebuilds gguf's tensor-name map once per module
(~9 s). Here the metadata and the tensor table are read once with ``struct``; each tensor is
dequantised by ``gguf.quants.dequantize`` (what transformers itself calls, so the weights are
bit-identical), renamed with gguf's own name map, and q/k get back the row order that
llama.cpp's converter permuted for its rotary layout. The config is built from the metadata
with transformers' names, the tokenizer by transformers from the same file.

Only architectures listed in :data:`DIRECT` are converted here; :func:`convert` returns
False for any other file, and the caller goes through transformers.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

# GGUF architecture -> how its metadata names the config fields transformers uses (the
# names of transformers' own GGUF loader). Files of other architectures go through transformers.
DIRECT: dict[str, dict[str, str]] = {
    "llama": {
        "llama.context_length": "max_position_embeddings",
        "llama.block_count": "num_hidden_layers",
        "llama.feed_forward_length": "intermediate_size",
        "llama.embedding_length": "hidden_size",
        "llama.rope.dimension_count": "head_dim",
        "llama.rope.freq_base": "rope_theta",
        "llama.attention.head_count": "num_attention_heads",
        "llama.attention.head_count_kv": "num_key_value_heads",
        "llama.attention.layer_norm_rms_epsilon": "rms_norm_eps",
        "llama.vocab_size": "vocab_size",
        "tokenizer.ggml.bos_token_id": "bos_token_id",
        "tokenizer.ggml.eos_token_id": "eos_token_id",
        "tokenizer.ggml.unknown_token_id": "unk_token_id",
        "tokenizer.ggml.padding_token_id": "pad_token_id",
    },
}
WEIGHTS_FILE = "model.safetensors"
# The share of the progress spent dequantising; the rest is writing the weights.
_DEQUANTISE_SHARE = 0.9

Progress = Callable[[float], None]


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # numpy order (ggml's dimensions reversed)
    ggml_type: int
    offset: int  # from the start of the data section


@dataclasses.dataclass(frozen=True)
class Header:
    """A GGUF file's metadata and tensor table (its tensor data is not read)."""

    metadata: dict
    tensors: tuple[TensorInfo, ...]
    data_start: int

    @property
    def architecture(self) -> str:
        return self.metadata.get("general.architecture", "")


# Fixed-size metadata value types -> struct format (8 is a string, 9 an array).
_SCALARS = dict(enumerate("BbHhIif?")) | {10: "Q", 11: "q", 12: "d"}


def read_header(path: Path) -> Header:
    """Parse a GGUF file's metadata and tensor table (GGUF v2 and v3, little-endian; other
    files raise NotImplementedError, and a file that is not GGUF ValueError)."""
    # Any: numpy's stubs do not declare memmap's buffer protocol, which struct reads.
    blob: Any = np.memmap(path, mode="r", dtype=np.uint8)
    if bytes(blob[:4]) != b"GGUF":
        raise ValueError(f"{path} is not a GGUF file")
    version, tensor_count, kv_count = struct.unpack_from("<IQQ", blob, 4)
    if version not in (2, 3):  # another version, or a big-endian file: gguf's own reader
        raise NotImplementedError(f"{path}: GGUF version {version} (2 and 3 are read here)")
    pos, metadata = 24, {}
    for _ in range(kv_count):
        key, pos = _string(blob, pos)
        (kind,) = struct.unpack_from("<I", blob, pos)
        metadata[key], pos = _value(blob, pos + 4, kind)
    tensors = []
    for _ in range(tensor_count):
        name, pos = _string(blob, pos)
        (n_dims,) = struct.unpack_from("<I", blob, pos)
        dims = struct.unpack_from(f"<{n_dims}Q", blob, pos + 4)
        ggml_type, offset = struct.unpack_from("<IQ", blob, pos + 4 + 8 * n_dims)
        pos += 4 + 8 * n_dims + 12
        tensors.append(TensorInfo(name, tuple(reversed(dims)), ggml_type, offset))
    alignment = metadata.get("general.alignment", 32)
    return Header(metadata, tuple(tensors), -(-pos // alignment) * alignment)


def _string(blob, pos: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", blob, pos)
    return bytes(blob[pos + 8 : pos + 8 + length]).decode("utf-8"), pos + 8 + length


def _value(blob, pos: int, kind: int):
    if kind in _SCALARS:
        fmt = "<" + _SCALARS[kind]
        return struct.unpack_from(fmt, blob, pos)[0], pos + struct.calcsize(fmt)
    if kind == 8:
        return _string(blob, pos)
    if kind == 9:
        item_kind, count = struct.unpack_from("<IQ", blob, pos)
        pos += 12
        if item_kind in _SCALARS:
            fmt = f"<{count}{_SCALARS[item_kind]}"
            return list(struct.unpack_from(fmt, blob, pos)), pos + struct.calcsize(fmt)
        values = []
        for _ in range(count):
            value, pos = _value(blob, pos, item_kind)
            values.append(value)
        return values, pos
    raise ValueError(f"GGUF metadata value of unknown type {kind}")


def convert(gguf_path: Path, out: Path, on_progress: Progress = lambda _f: None) -> bool:
    """Write ``gguf_path`` as a transformers folder (config, tokenizer, safetensors weights)
    into ``out``. Returns False, having written nothing, for a file this module does not know
    (another architecture, a tensor type or name it cannot place): use transformers then."""
    import torch
    from safetensors.torch import save_file

    try:
        header = read_header(gguf_path)
    except NotImplementedError:
        return False
    plan = _plan(header)
    if plan is None:
        return False
    config, names = plan
    on_progress(0.0)
    tokenizer = _tokenizer(gguf_path)
    blob = np.memmap(gguf_path, mode="r", dtype=np.uint8)
    total = sum(prod(t.shape) for t in header.tensors)
    done, tensors = 0, {}
    # One thread: these are small memory-bound operations, and a second thread cost 2 CPU-s
    # instead of 0.3 for SmolLM2 on a busy 2-core machine (it spins waiting for its turn).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for info in header.tensors:
            weights = _permuted(info.name, _dequantised(blob, header.data_start, info), config)
            tensors[names[info.name]] = weights.contiguous()
            done += prod(info.shape)
            on_progress(_DEQUANTISE_SHARE * done / total)
    finally:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, out / WEIGHTS_FILE, metadata={"format": "pt"})
    config.save_pretrained(out)
    _generation_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    on_progress(1.0)
    return True


def _plan(header: Header):
    """``(config, {gguf name: transformers name})``, or None when the file is not one this
    module converts exactly as transformers would."""
    import gguf
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    arch = header.architecture
    if arch not in DIRECT or "mistral" in str(header.metadata.get("general.name", "")).lower():
        return None  # transformers reads a llama-architecture Mistral file as "mistral"
    if not all(_dequantisable(t.ggml_type) for t in header.tensors):
        return None
    config = AutoConfig.for_model(**_config_fields(header))
    config.dtype = torch.float32
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    config.architectures = [type(skeleton).__name__]
    arch_id = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    name_map = gguf.get_tensor_name_map(arch_id, config.num_hidden_layers)
    names = {}
    for hf_name in skeleton.state_dict():
        stem, _, suffix = hf_name.rpartition(".")
        gguf_name = name_map.get_name(stem)
        if gguf_name is not None:
            names[f"{gguf_name}.{suffix}"] = hf_name
    present = {t.name for t in header.tensors}
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    missing = set(skeleton.state_dict()) - {names[n] for n in present if n in names} - tied
    if missing or not present <= set(names):
        return None  # a tensor without a place, or a parameter without a tensor
    return config, names


def _config_fields(header: Header) -> dict:
    meta, arch = header.metadata, header.architecture
    fields: dict[str, Any] = {"model_type": arch}
    fields.update({name: meta[key] for key, name in DIRECT[arch].items() if key in meta})
    if "general.name" in meta:
        fields["_model_name_or_path"] = meta["general.name"]
    if "vocab_size" not in fields and "tokenizer.ggml.tokens" in meta:
        fields["vocab_size"] = len(meta["tokenizer.ggml.tokens"])
    # No separate output matrix: the embeddings are the output layer too.
    fields["tie_word_embeddings"] = all(t.name != "output.weight" for t in header.tensors)
    return fields


def _tokenizer(gguf_path: Path):
    # transformers builds the tokenizer from the file's vocabulary and merges (its fast path
    # reads only those), the same one AutoTokenizer gives for this file.
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)


def _generation_config(config):
    from transformers import GenerationConfig

    return GenerationConfig.from_model_config(config)


def _dequantisable(ggml_type: int) -> bool:
    from gguf import GGMLQuantizationType
    from gguf.quants import _type_traits

    try:
        kind = GGMLQuantizationType(ggml_type)
    except ValueError:
        return False
    plain = (GGMLQuantizationType.F32, GGMLQuantizationType.F16)
    return kind in plain or kind.name in _BLOCKS or kind in _type_traits


def _dequantised(blob, data_start: int, info: TensorInfo):
    """One tensor as float32 (a torch tensor), exactly as ``gguf.quants.dequantize`` gives it."""
    import torch
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize

    kind = GGMLQuantizationType(info.ggml_type)
    start = data_start + info.offset
    if kind in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        dtype = np.float32 if kind == GGMLQuantizationType.F32 else np.float16
        raw = blob[start : start + prod(info.shape) * np.dtype(dtype).itemsize]
        values = dequantize(raw.view(dtype).reshape(info.shape), kind)
        return torch.from_numpy(np.array(values, dtype=np.float32))
    block, size = GGML_QUANT_SIZES[kind]
    row_bytes = info.shape[-1] // block * size
    raw = blob[start : start + prod(info.shape[:-1]) * row_bytes]
    if kind.name in _BLOCKS:
        blocks = torch.from_numpy(np.array(raw)).reshape(-1, size)
        return _BLOCKS[kind.name](blocks).reshape(info.shape)
    values = dequantize(raw.reshape(*info.shape[:-1], row_bytes), kind)
    return torch.from_numpy(np.array(values, dtype=np.float32))


# The common block types, dequantised with torch: the same operations in the same order as
# gguf.quants (each rounded to float32 on its own, no fused multiply-add), ~10x faster than
# its numpy loop over row groups. Other types go through gguf.quants.


def _half(blocks, start: int):
    import torch

    return blocks[:, start : start + 2].contiguous().view(torch.float16).float()


def _nibbles(packed, dtype):
    """A block's 4-bit values, low nibbles first, then high ones (ggml's order)."""
    import torch

    out = torch.empty(packed.shape[0], 2 * packed.shape[1], dtype=dtype)
    out[:, : packed.shape[1]] = packed & 0x0F
    out[:, packed.shape[1] :] = packed >> 4
    return out


def _q8_0(blocks):
    import torch

    return blocks[:, 2:].contiguous().view(torch.int8).float().mul_(_half(blocks, 0))


def _q4_0(blocks):
    import torch

    return _half(blocks, 0) * (_nibbles(blocks[:, 2:], torch.int8) - 8).float()


def _q4_1(blocks):
    import torch

    return _nibbles(blocks[:, 4:], torch.float32).mul_(_half(blocks, 0)).add_(_half(blocks, 2))


_BLOCKS = {"Q8_0": _q8_0, "Q4_0": _q4_0, "Q4_1": _q4_1}


def _permuted(name: str, weights, config):
    """Undo llama.cpp's permutation of the q and k rows (it interleaves each head's two
    rotary halves); as transformers' GGUF loader does."""
    if ".attn_q." in name:
        heads = config.num_attention_heads
    elif ".attn_k." in name:
        heads = config.num_key_value_heads
    else:
        return weights
    half = weights.shape[0] // heads // 2
    w = weights.reshape(heads, half, 2, *weights.shape[1:])
    return w.transpose(1, 2).reshape(weights.shape)
