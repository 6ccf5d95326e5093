"""The serving copy of a base model: its matrices kept in float16, read at memory speed.

Decoding one sequence multiplies a single row by every weight matrix of the model, once per
token, so a step lasts as long as reading the weights from memory. Kept in float16 they are
half the bytes of float32, and PyTorch's float16 matrix-vector product (accumulating in
float32) reads them at memory speed where its float32 one does not: on a 2-core AMD EPYC
(avx512_bf16) a one-row step of SmolLM2-135M takes about 20 ms instead of 60
(``benchmarks/serving.py`` measures it against llama.cpp on an F16 GGUF, which stores the
same weights the same way). Greedy answers stay those of float32 on the packaged model's
test prompts (``tests/serving/test_weights.py``).

Products of many rows (a prompt, a batch of requests) run faster in float32, so for those the
weight is widened for the call, a block of output rows at a time into one reused buffer: a
matrix as large as the output layer (49,152 x 576 here), widened whole, costs a fresh 113 MB
allocation whose page faults took 55-70 ms a step, against 8-21 ms in blocks. The token
embedding is stored once in float16 too, shared with a tied output layer; norms, attention, the
residual stream and the adapters' updates stay float32. ``TUNESMITH_SERVING_WEIGHTS=float32``
serves the weights as trained.
"""

from __future__ import annotations

import threading

import torch
from torch.nn import functional

from ..engine.unmap import own_copies

HALF_ROWS = 2  # up to this many rows, the float16 product is faster than widening
WIDEN_BLOCK = 1 << 21  # elements widened at a time (an 8 MiB float32 buffer per thread)

_buffers = threading.local()


def _buffer() -> torch.Tensor:
    buffer = getattr(_buffers, "tensor", None)
    if buffer is None:
        buffer = _buffers.tensor = torch.empty(WIDEN_BLOCK)
    return buffer


class HalfLinear(torch.nn.Module):
    """A linear layer whose weight is stored in float16; float32 in, float32 out."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.out_features, self.in_features = weight.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() <= HALF_ROWS * self.in_features:
            y = functional.linear(x.half(), self.weight).to(x.dtype)
            return y if self.bias is None else y + self.bias
        if self.weight.numel() <= WIDEN_BLOCK:
            return functional.linear(x, self.weight.to(x.dtype), self.bias)
        return self._widened_in_blocks(x)

    def _widened_in_blocks(self, x: torch.Tensor) -> torch.Tensor:
        buffer, rows = _buffer(), WIDEN_BLOCK // self.in_features
        flat = x.reshape(-1, self.in_features)
        out = torch.empty(flat.shape[0], self.out_features, dtype=x.dtype)
        for start in range(0, self.out_features, rows):
            block = self.weight[start : start + rows]
            wide = buffer[: block.numel()].view(block.shape).copy_(block)
            out[:, start : start + len(block)] = flat @ wide.t()
        if self.bias is not None:
            out += self.bias
        return out.view(*x.shape[:-1], self.out_features)


class HalfEmbedding(torch.nn.Module):
    """Token embeddings stored in float16, looked up as float32."""

    weight: torch.Tensor

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return functional.embedding(ids, self.weight).float()


def halve(model: torch.nn.Module) -> torch.nn.Module:
    """Replace ``model``'s linear layers and input embedding by float16-stored ones, in place
    (a tied output layer shares the embedding's float16 copy, as it shared the weight)."""
    halves: dict[int, torch.Tensor] = {}  # one float16 copy per float32 tensor (ties)

    def half(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in halves:
            halves[id(t)] = t.detach().half().contiguous()
        return halves[id(t)]

    get_embeddings = getattr(model, "get_input_embeddings", None)
    embeddings = get_embeddings() if get_embeddings else None
    if isinstance(embeddings, torch.nn.Embedding):
        model.set_input_embeddings(HalfEmbedding(half(embeddings.weight)))  # type: ignore[operator]
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                bias = None if child.bias is None else child.bias.detach()
                setattr(parent, name, HalfLinear(half(child.weight), bias))
    own_copies(model, torch.float16)  # what stays float32 lets the checkpoint file go
    return model


def is_linear(module: torch.nn.Module) -> bool:
    """A linear layer as served, float32 or float16-stored (what an adapter may target)."""
    return isinstance(module, (torch.nn.Linear, HalfLinear))
