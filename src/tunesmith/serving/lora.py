"""Many LoRA adapters over one base model, mixed row by row in one batch.

Every linear layer an adapter targets is wrapped once in a :class:`LoRALinear`. For a batch
whose rows use adapters ``u1..un`` (or none), each wrapped layer concatenates those adapters'
``A`` matrices side by side and their ``B`` matrices one above the other, so the whole batch
takes two plain matmuls per layer::

    y = x @ W + ((x @ [A1 .. An]) * mask) @ [B1 ; .. ; Bn]

where ``mask`` keeps, for each row, only the columns of its own adapter (a row with no adapter
keeps none). Extra work is ``n * rank`` columns per layer, small beside the base's own
matmul, and there is no per-adapter loop: peft's mixed-batch forward instead runs one small
matmul per adapter per layer and gathers rows back, which on a CPU costs more than the base.

Adapters are read from peft's files (``adapter_config.json`` and
``adapter_model.safetensors``), which is what a tuning run saves; the LoRA scale is folded
into ``B`` when loading. Only plain LoRA on linear layers is served (tunesmith never trains
anything else); an adapter using other peft features is refused with a clear error.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import torch

from ..engine.export.weights import check_lora_config
from ..errors import FailedPrecondition
from .adapters import CONFIG_FILE, WEIGHTS_FILE
from .weights import is_linear

_PREFIX = "base_model.model."  # peft's prefix on saved keys


@dataclasses.dataclass
class AdapterWeights:
    """One adapter: for each target layer's name, ``A`` as [in, r] and scaled ``B`` as [r, out]."""

    name: str
    layers: dict[str, tuple[torch.Tensor, torch.Tensor]]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for pair in self.layers.values() for t in pair)


def read_adapter(folder: Path, name: str) -> AdapterWeights:
    """Load a peft LoRA adapter's weights (safetensors only), scaled and transposed for use."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
        tensors = load_file(folder / WEIGHTS_FILE)
    except (OSError, ValueError) as e:
        raise FailedPrecondition(f"adapter {folder.name}: cannot read it ({e})") from e
    check_lora_config(config, folder, "served")
    alpha = float(config.get("lora_alpha", 8))
    layers = {}
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            if ".lora_B." not in key:
                raise FailedPrecondition(f"adapter {folder.name}: unexpected weight {key}")
            continue
        layer = key.removeprefix(_PREFIX).removesuffix(".lora_A.weight")
        b = tensors.get(key.replace(".lora_A.", ".lora_B."))
        if b is None or a.dim() != 2 or b.shape[1] != a.shape[0]:
            raise FailedPrecondition(f"adapter {folder.name}: LoRA weights of {layer} don't match")
        rank = a.shape[0]
        scale = alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)
        layers[layer] = (a.float().t().contiguous(), (b.float() * scale).t().contiguous())
    if not layers:
        raise FailedPrecondition(f"adapter {folder.name}: no LoRA weights in {WEIGHTS_FILE}")
    return AdapterWeights(name, layers)


class BatchAdapters:
    """Which adapter each row of the running batch uses, shared by every wrapped layer."""

    def __init__(self):
        self.adapters: list[AdapterWeights] = []
        self.slots: torch.Tensor | None = None  # [rows]: index into ``adapters``, -1 for none
        self._stacked: dict[str, tuple | None] = {}
        self._masks: dict[tuple, torch.Tensor | None] = {}  # by column layout (owners)

    def begin(self, rows: list[AdapterWeights | None]) -> None:
        unique = list({id(a): a for a in rows if a is not None}.values())
        index = {id(a): i for i, a in enumerate(unique)}
        self.adapters = unique
        self.slots = torch.tensor([-1 if a is None else index[id(a)] for a in rows])
        self._stacked, self._masks = {}, {}

    def select(self, keep: torch.Tensor) -> None:
        """Rows that finished leave the batch."""
        if self.slots is not None:
            self.slots = self.slots[keep]
            self._masks = {}

    def end(self) -> None:
        self.adapters, self.slots, self._stacked, self._masks = [], None, {}, {}

    def stacked(self, layer: str):
        """``(A_cat, B_cat, mask)`` of the batch's adapters at ``layer``, or None if none.

        ``mask`` is None when every row uses the one adapter present at the layer."""
        if layer not in self._stacked:
            self._stacked[layer] = self._stack(layer)
        found = self._stacked[layer]
        if found is None:
            return None
        a_cat, b_cat, owners = found
        assert self.slots is not None  # set with the rows, before any layer asks
        if owners not in self._masks:  # layers with the same adapters share one mask
            mask = self.slots[:, None] == torch.tensor(owners)[None, :]  # [rows, R]
            self._masks[owners] = None if bool(mask.all()) else mask.to(a_cat.dtype)[:, None, :]
        return a_cat, b_cat, self._masks[owners]

    def _stack(self, layer: str):
        present = [(i, a.layers[layer]) for i, a in enumerate(self.adapters) if layer in a.layers]
        if not present:
            return None
        a_cat = torch.cat([a for _, (a, _) in present], dim=1)
        b_cat = torch.cat([b for _, (_, b) in present], dim=0)
        owners = tuple(i for i, (a, _) in present for _ in range(a.shape[1]))  # per column
        return a_cat, b_cat, owners


class LoRALinear(torch.nn.Module):
    """A base linear layer plus each row's own adapter update (see the module docstring)."""

    def __init__(self, base: torch.nn.Module, name: str, batch: BatchAdapters):
        super().__init__()
        self.base = base
        self.layer_name = name
        self.batch = batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if not self.batch.adapters:
            return y
        found = self.batch.stacked(self.layer_name)
        if found is None:
            return y
        a_cat, b_cat, mask = found
        h = x.to(a_cat.dtype) @ a_cat
        if mask is not None:
            h = h * mask
        return y + (h @ b_cat).to(y.dtype)


def wrap_layers(model: torch.nn.Module, names, batch: BatchAdapters) -> None:
    """Wrap the named linear layers of ``model`` (once each) so adapters can act on them."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        try:
            parent = model.get_submodule(parent_name)
            module = getattr(parent, child)
        except AttributeError as e:
            raise FailedPrecondition(f"adapter targets {name}, which the base model lacks") from e
        if isinstance(module, LoRALinear):
            continue
        if not is_linear(module):
            raise FailedPrecondition(f"adapter targets {name}, which is not a linear layer")
        setattr(parent, child, LoRALinear(module, name, batch))
