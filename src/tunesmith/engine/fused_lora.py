"""LoRA training with fewer, larger operations: one autograd node per group of projections.

On a CPU, a LoRA step over short examples is not bound by the base model's matmuls (bf16
matmul is fast) but by the number of operations: peft runs, per projection, a dropout, two
small matmuls, a scale, an add and the dtype casts autocast inserts, each with its own autograd
node, and backward doubles that. This module replaces the forward of peft's LoRA layers with
one hand-written autograd function per *group of projections that read the same input* (a
transformer's q/k/v, and its gate/up), found by watching one forward pass:

    forward    y = x @ W_cat^T + (x @ A_cat^T) @ B_diag^T        (two small matmuls, one large)
    backward   the gradients of x, of every A and of every B      (four small, one large)

``W_cat`` is the group's frozen weights side by side (the members' weights become views of it,
so nothing is copied twice), ``A_cat`` their LoRA A matrices stacked, and ``B_diag`` the B
matrices on a block diagonal with their scales folded in. The trainable A and B stay peft's own
float32 parameters, so saving, checkpoints and optimizer state are unchanged; only the
arithmetic is regrouped, and it computes the same function (tests compare it with peft's).

Layers peft's plain path would not handle the same way (dropout, DoRA, several adapters,
biases with LoRA on them are fine) are left to peft.
"""

from __future__ import annotations

import torch


class _GroupLoRA(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, a_cat, b_diag):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).to(weight.dtype)
        a = a_cat.to(weight.dtype)
        b = b_diag.to(weight.dtype)
        xa = x2 @ a.t()
        y = torch.addmm(bias, x2, weight.t()) if bias is not None else x2 @ weight.t()
        y = y.addmm_(xa, b.t())
        ctx.save_for_backward(x2, xa, weight, a, b)
        ctx.shape, ctx.x_dtype = shape, x.dtype
        ctx.a_dtype, ctx.b_dtype = a_cat.dtype, b_diag.dtype
        return y.reshape(*shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        x2, xa, weight, a, b = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1]).to(weight.dtype)
        g_xa = g @ b  # [N, R]
        grad_x = grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = (g @ weight).addmm_(g_xa, a).reshape(ctx.shape).to(ctx.x_dtype)
        if ctx.needs_input_grad[3]:
            grad_a = (g_xa.t() @ x2).to(ctx.a_dtype)
        if ctx.needs_input_grad[4]:
            grad_b = (g.t() @ xa).to(ctx.b_dtype)
        return grad_x, None, None, grad_a, grad_b


class _Group:
    """Projections that read the same input, computed together on the first one's call."""

    def __init__(self, layers: list):
        self.layers = layers
        weights = [lyr.base_layer.weight for lyr in layers]
        self.weight = torch.cat(weights)
        offset = 0
        self.slices = []
        for lyr, w in zip(layers, weights, strict=True):
            view = self.weight[offset : offset + w.shape[0]]
            lyr.base_layer.weight = torch.nn.Parameter(view, requires_grad=False)
            self.slices.append((offset, offset + w.shape[0]))
            offset += w.shape[0]
        biases = [lyr.base_layer.bias for lyr in layers]
        self.bias = None
        if any(b is not None for b in biases):
            self.bias = torch.cat(
                [
                    b.to(self.weight.dtype) if b is not None else self.weight.new_zeros(w.shape[0])
                    for b, w in zip(biases, weights, strict=True)
                ]
            )
        self._input = None
        self._output = None
        self._waiting = 0

    def output(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if self._input is not x:  # the first of the group to be called computes for all
            self._input, self._output = x, self._compute(x)
            self._waiting = len(self.layers)
        start, end = self.slices[index]
        out = self._output[..., start:end]
        self._waiting -= 1
        if self._waiting == 0:
            self._input = self._output = None  # nothing kept past the last member's call
        return out

    def _compute(self, x: torch.Tensor) -> torch.Tensor:
        a_parts, b_parts = [], []
        for lyr in self.layers:
            a_parts.append(lyr.lora_A["default"].weight)
            b_parts.append(lyr.lora_B["default"].weight * lyr.scaling["default"])
        a_cat = torch.cat(a_parts)
        b_diag = torch.block_diag(*b_parts)
        with torch.autocast(x.device.type, enabled=False):
            return _GroupLoRA.apply(x, self.weight, self.bias, a_cat, b_diag)


def fuse(model: torch.nn.Module, sample: torch.Tensor) -> int:
    """Regroup the LoRA layers of peft ``model``; ``sample`` (input ids) drives one probe
    forward that shows which projections share an input. Returns the number of groups."""
    from peft.tuners.lora import Linear as LoraLinear

    layers = [m for m in model.modules() if isinstance(m, LoraLinear) and _plain(m)]
    seen: dict[int, list] = {}
    inputs: list[torch.Tensor] = []  # kept alive, so no two inputs ever share an id()
    hooks = []

    def record(module, args):
        key = id(args[0])
        if key not in seen:
            seen[key] = []
            inputs.append(args[0])
        seen[key].append(module)

    for lyr in layers:
        hooks.append(lyr.register_forward_pre_hook(record))
    try:
        # Autocast lets a probe run over bf16 linear weights and float32 embeddings alike.
        with torch.inference_mode(), torch.autocast(sample.device.type, torch.bfloat16):
            model(input_ids=sample, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    count = 0
    for x in inputs:
        members = seen[id(x)]
        if len(set(map(id, members))) != len(members):
            continue  # a layer called twice on one input: leave it to peft
        group = _Group(members)
        for index, lyr in enumerate(members):
            lyr.forward = _member_forward(group, index)
        count += 1
    return count


def _member_forward(group: _Group, index: int):
    def forward(x, *args, **kwargs):
        return group.output(index, x)

    return forward


def _plain(layer) -> bool:
    """A LoRA layer with one adapter, no dropout, no DoRA, not merged: the arithmetic above."""
    return (
        list(layer.lora_A.keys()) == ["default"]
        and layer.active_adapters == ["default"]
        and not layer.merged
        and not layer.disable_adapters
        and not layer.lora_variant
        and isinstance(layer.lora_dropout["default"], torch.nn.Identity)
        and isinstance(layer.base_layer, torch.nn.Linear)
    )
