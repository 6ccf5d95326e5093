"""LoRA training with fewer, larger operations: one autograd node per group of projections.

On a CPU, a LoRA step over short examples is not bound by the base model's matmuls (bf16
matmul is fast) but by the number of operations: peft runs, per projection, a dropout, two
small matmuls, a scale, an add and the dtype casts autocast inserts, each with its own autograd
node, and backward doubles that. This module replaces the forward of peft's LoRA layers with
one hand-written autograd function per *group of projections that read the same input* (a
transformer's q/k/v, and its gate/up), found by watching one forward pass:

    forward    y = x @ W_cat^T + ((x @ A_cat^T) * s) @ B_diag^T      (one large matmul, two small)
    backward   the gradients of x, of every A and of every B         (one large, four small)

``W_cat`` is the group's frozen weights side by side (the members' weights become views of it,
so nothing is copied twice), ``A_cat`` their LoRA A matrices stacked, ``B_diag`` the B matrices
on a block diagonal and ``s`` each rank column's LoRA scale. The trainable A and B stay peft's
own float32 parameters and go into the function as they are, so saving, checkpoints and
optimizer state are unchanged; only the arithmetic is regrouped, and it computes the same
function (tests compare outputs and gradients with peft's).

LoRA layers with anything beyond that arithmetic (dropout, DoRA, several adapters, a merged
adapter) are left to peft's own forward.
"""

from __future__ import annotations

import torch


class _GroupLoRA(torch.autograd.Function):
    """``forward(x, group, *A, *B)`` -> one output per member; A and B are the members' own
    parameters, so their gradients come straight back without cat / scale / slice nodes."""

    @staticmethod
    def forward(ctx, x, group, *lora):
        k = len(group.sizes)
        dt = group.weight.dtype
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).to(dt)
        # A group of one (o_proj, down_proj: half the groups) skips the cat and block_diag copies
        a = (lora[0] if k == 1 else torch.cat(lora[:k])).to(dt)  # [R, in]
        b = (lora[1] if k == 1 else torch.block_diag(*lora[k:])).to(dt)  # [out, R], unscaled
        xa = (x2 @ a.t()).mul_(group.scales)  # [N, R], each member's columns at its scale
        if group.bias is not None:
            y = torch.addmm(group.bias, x2, group.weight.t())
        else:
            y = x2 @ group.weight.t()
        y.addmm_(xa, b.t())
        ctx.save_for_backward(x2, xa, a, b)
        ctx.group, ctx.shape, ctx.x_dtype = group, shape, x.dtype
        ctx.lora_dtype = lora[0].dtype  # float32 master weights
        y = y.reshape(*shape[:-1], y.shape[-1])
        return tuple(y.split(group.sizes, dim=-1))

    @staticmethod
    def backward(ctx, *grads):
        x2, xa, a, b = ctx.saved_tensors
        group = ctx.group
        parts = [
            gr if gr is not None else x2.new_zeros(*ctx.shape[:-1], n)
            for gr, n in zip(grads, group.sizes, strict=True)
        ]
        g = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)  # as a and b in forward
        g = g.reshape(-1, g.shape[-1]).to(group.weight.dtype)
        g_xa = (g @ b).mul_(group.scales)  # [N, R]
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (g @ group.weight).addmm_(g_xa, a).reshape(ctx.shape).to(ctx.x_dtype)
        grad_a = (g_xa.t() @ x2).to(ctx.lora_dtype)  # [R, in]
        grad_b = (g.t() @ xa).to(ctx.lora_dtype)  # [out, R]: members' blocks on the diagonal
        a_grads, b_grads = [], []
        for (r0, r1), (o0, o1) in zip(group.rank_spans, group.out_spans, strict=True):
            a_grads.append(grad_a[r0:r1])
            b_grads.append(grad_b[o0:o1, r0:r1])
        return (grad_x, None, *a_grads, *b_grads)


class _Group:
    """Projections that read the same input, computed together on the first one's call."""

    def __init__(self, layers: list):
        self.layers = layers
        weights = [lyr.base_layer.weight for lyr in layers]
        self.weight = torch.cat(weights)
        self.sizes = [w.shape[0] for w in weights]
        self.out_spans = _spans(self.sizes)
        for lyr, (start, end) in zip(layers, self.out_spans, strict=True):
            view = self.weight[start:end]
            lyr.base_layer.weight = torch.nn.Parameter(view, requires_grad=False)
        ranks = [lyr.lora_A["default"].weight.shape[0] for lyr in layers]
        self.rank_spans = _spans(ranks)
        self.scales = torch.cat(
            [
                torch.full((r,), float(lyr.scaling["default"]))
                for lyr, r in zip(layers, ranks, strict=True)
            ]
        ).to(self.weight.dtype)
        biases = [lyr.base_layer.bias for lyr in layers]
        self.bias = None
        if any(b is not None for b in biases):
            self.bias = torch.cat(
                [
                    b.to(self.weight.dtype) if b is not None else self.weight.new_zeros(n)
                    for b, n in zip(biases, self.sizes, strict=True)
                ]
            )
        self._input: torch.Tensor | None = None
        self._outputs: tuple = ()
        self._waiting = 0

    def output(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if self._input is not x:  # the first of the group to be called computes for all
            self._input, self._outputs = x, self._compute(x)
            self._waiting = len(self.layers)
        out = self._outputs[index]
        self._waiting -= 1
        if self._waiting == 0:
            self._input, self._outputs = None, ()  # nothing kept past the last member's call
        return out

    def _compute(self, x: torch.Tensor) -> tuple:
        a = [lyr.lora_A["default"].weight for lyr in self.layers]
        b = [lyr.lora_B["default"].weight for lyr in self.layers]
        with torch.autocast(x.device.type, enabled=False):
            return _GroupLoRA.apply(x, self, *a, *b)


def _spans(sizes: list[int]) -> list[tuple[int, int]]:
    ends = torch.tensor(sizes).cumsum(0).tolist()
    return [(end - n, end) for n, end in zip(sizes, ends, strict=True)]


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
