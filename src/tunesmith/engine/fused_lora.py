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

Compiled decoder layers cannot use that node (it keeps state between the members' calls, where
the compiler breaks its graph); :class:`GroupLoRAPass` regroups the same products in the
compiler's graph instead. The frozen weights stay apart there (joining them would copy them at
every step); the low-rank products of a group become two matmuls instead of two per member.
"""

from __future__ import annotations

import hashlib
import operator
from pathlib import Path

import torch
from torch._inductor.custom_graph_pass import CustomGraphPass


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


_LINEAR = (torch._C._nn.linear, torch.nn.functional.linear)

LOW_RANK_MAX = 64
"""Products of rank up to this (and at most a quarter of their input's width) are grouped;
the block diagonal's zeros cost nothing measurable there, unlike between full-size layers."""


class GroupLoRAPass(CustomGraphPass):
    """Inductor's pre-grad pass (``torch.compile(options={"pre_grad_custom_pass": ...})``)
    that computes the low-rank products reading one input together::

        linear(linear(x, A_i), B_i) for each i
        -> split(linear(linear(x, cat(A)), block_diag(B)))

    The same function (the block diagonal's zeros add nothing), so autograd derives the same
    gradients; for a layer's q/k/v and gate/up, 24 LoRA matmuls a step instead of 42 per
    decoder layer, forward and backward. Any such chain qualifies: the rewrite is exact for
    every one; only the low rank makes it pay."""

    def __call__(self, graph: torch.fx.Graph) -> None:
        order = {node: i for i, node in enumerate(graph.nodes)}
        groups: dict[torch.fx.Node, list[tuple]] = {}
        for node in graph.nodes:
            chain = _low_rank_chain(node)
            if chain is not None:
                groups.setdefault(chain[0], []).append((node, *chain[1:]))
        for x, members in groups.items():
            if len(members) > 1:
                _regroup(graph, x, members, order)

    def uuid(self) -> str:
        """Part of inductor's cache key: code compiled before this module changed is not
        reused after."""
        return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _regroup(graph: torch.fx.Graph, x, members: list[tuple], order: dict) -> None:
    """``members``: (outer linear, inner linear, A, B, B's rows) for each product of ``x``."""
    first = min((inner for _, inner, *_ in members), key=order.__getitem__)
    with graph.inserting_before(first):
        a = graph.call_function(torch.cat, ([m[2] for m in members],), {"dim": 0})
        b = graph.call_function(torch.block_diag, tuple(m[3] for m in members))
        low = graph.call_function(torch._C._nn.linear, (x, a, None))
        both = graph.call_function(torch._C._nn.linear, (low, b, None))
        parts = graph.call_function(torch.split, (both, [m[4] for m in members]), {"dim": -1})
        for i, (outer, *_) in enumerate(members):
            outer.replace_all_uses_with(graph.call_function(operator.getitem, (parts, i)))
    for outer, inner, *_ in members:
        graph.erase_node(outer)
        graph.erase_node(inner)


def _low_rank_chain(node: torch.fx.Node) -> tuple | None:
    """``(x, inner, A, B, B's rows)`` if ``node`` is ``linear(linear(x, A), B)``, no biases,
    the inner result used only there and A of low rank; else None."""
    if not _plain_linear(node):
        return None
    inner = node.args[0]
    if not (isinstance(inner, torch.fx.Node) and _plain_linear(inner) and len(inner.users) == 1):
        return None
    a, b = _shape(inner.args[1]), _shape(node.args[1])
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    rank, width = a
    if not (isinstance(rank, int) and rank <= LOW_RANK_MAX and 4 * rank <= width):
        return None
    if b[1] != rank or not isinstance(b[0], int):
        return None
    return inner.args[0], inner, inner.args[1], node.args[1], b[0]


def _plain_linear(node) -> bool:
    """A bias-free ``linear(input, weight)`` with both given positionally, as dynamo records
    an ``nn.Linear`` call."""
    return (
        node.op == "call_function"
        and node.target in _LINEAR
        and len(node.args) in (2, 3)
        and (len(node.args) == 2 or node.args[2] is None)
        and not node.kwargs
    )


def _shape(node) -> tuple | None:
    value = node.meta.get("example_value") if isinstance(node, torch.fx.Node) else None
    return None if value is None else tuple(value.shape)
