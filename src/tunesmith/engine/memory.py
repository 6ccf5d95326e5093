"""Peak-memory estimate for a run, checked before anything heavy is loaded.

A run that does not fit would otherwise be killed by the operating system part-way through,
leaving a job that dies again on every retry. :func:`check` refuses it at once with a
:class:`~tunesmith.errors.ResourceExhausted` error that says what it needs and what to change.

The estimate (bytes), for P base parameters, E of them in the embedding, L layers of width h,
MLP width i, a heads, vocabulary V, and T = batch_size x longest example tokens:

    weights       4P (float32); LoRA with bf16 frozen linears: 4E + 2(P - E)
    trainable     16 bytes per tuned parameter (weight, gradient, two AdamW moments);
                  full tuning tunes all P, LoRA r(in + out) per linear layer
    activations   L T (24h + 8i) x (1 in bf16, 1.5 in float32) kept for the backward pass,
                  plus L a x 4 x the attention probabilities' size, batch seq^2 (a packed
                  batch attends row by row too)
    logits        T V x 12 (bf16 logits, a float32 copy, its gradient): an upper bound, the
                  engine projects only target tokens
    runtime       1 GiB for the interpreter, torch and transformers

The constants are deliberately generous: refusing a run that would just have fit costs a
smaller batch, while admitting one that does not costs the whole machine.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from ..errors import ResourceExhausted

GiB = 1024**3
RUNTIME = 1 * GiB
HEADROOM = 0.9  # keep a tenth of what is free for everything else on the machine


@dataclasses.dataclass(frozen=True)
class Estimate:
    weights: int
    trainable: int
    activations: int
    logits: int
    runtime: int = RUNTIME

    @property
    def total(self) -> int:
        return self.weights + self.trainable + self.activations + self.logits + self.runtime


def estimate(
    base_dir: Path,
    method: str,
    batch_size: int,
    seq_len: int,
    bf16: bool,
    lora_rank: int = 8,
) -> Estimate:
    cfg = _text_config(json.loads((Path(base_dir) / "config.json").read_text()))
    h, layers, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    inter = cfg.get("intermediate_size") or 4 * h
    heads = cfg.get("num_attention_heads") or max(1, h // 64)
    kv = (cfg.get("num_key_value_heads") or heads) * (cfg.get("head_dim") or h // heads)
    params = count_parameters(base_dir) or _params_from_config(h, layers, inter, kv, vocab)
    emb = vocab * h
    if method == "full":
        weights, trainable = 4 * params, 16 * params
    else:
        weights = 4 * emb + 2 * (params - emb) if bf16 else 4 * params
        per_layer = 9 * h + 2 * kv + 3 * inter  # sum of (in + out) over the seven linears
        trainable = 16 * lora_rank * per_layer * layers
    tokens = batch_size * seq_len
    act = layers * tokens * (24 * h + 8 * inter)
    act = act if bf16 else act * 3 // 2
    act += layers * heads * batch_size * seq_len * seq_len * 4
    return Estimate(weights, trainable, act, tokens * vocab * 12)


def available_bytes() -> int:
    """Memory this process may still use: free memory, capped by a cgroup limit if any."""
    free = _meminfo_available()
    limit = _cgroup_remaining()
    return min(free, limit) if limit is not None else free


def check(
    base_dir: Path,
    method: str,
    batch_size: int,
    seq_len: int,
    bf16: bool,
    lora_rank: int = 8,
) -> Estimate:
    """Raise :class:`ResourceExhausted` when the run cannot fit in the memory available."""
    est = estimate(base_dir, method, batch_size, seq_len, bf16, lora_rank)
    have = available_bytes()
    if est.total > have * HEADROOM:
        raise ResourceExhausted(
            f"this tuning job needs about {est.total / GiB:.1f} GiB of memory "
            f"({method} tuning, batch_size {batch_size}, longest example {seq_len} tokens) "
            f"but only {have / GiB:.1f} GiB is available; try a smaller batch_size, shorter "
            "examples or LoRA instead of full tuning"
        )
    return est


def count_parameters(base_dir: Path) -> int:
    """Parameters in the folder's safetensors files, read from their headers only."""
    total = 0
    for path in Path(base_dir).glob("*.safetensors"):
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                n = 1
                for d in info["shape"]:
                    n *= d
                total += n
    return total


def _text_config(cfg: dict) -> dict:
    return cfg.get("text_config") or cfg  # multimodal configs nest the language model's


def _params_from_config(h: int, layers: int, inter: int, kv: int, vocab: int) -> int:
    return vocab * h + layers * (2 * h * h + 2 * h * kv + 3 * h * inter)


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _cgroup_remaining() -> int | None:
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((root / "memory.current").read_text())
    except (OSError, ValueError):
        return None
