"""The tuned adapters kept in memory on top of one base model: an LRU bounded by count and bytes.

``TUNESMITH_ADAPTER_CACHE`` is ``COUNT[,BYTES]``: at most COUNT adapters and at most BYTES of
adapter weights per base model, BYTES a number with an optional unit (B, KB, MB, GB, KiB,
MiB, GiB), e.g. ``64,128MiB`` (the default) or ``8``. Past either bound the least recently
used adapter leaves memory; its safetensors file stays on disk and is read again the next time
a request names it. Adapters used by the batch being decoded are pinned: they may hold the
cache over its bound until the batch ends, and are never evicted mid-batch.

The adapters' weights are applied by the base model's wrapped linear layers (:mod:`.lora`), so
a batch can mix them row by row. Only the scheduler thread calls this class.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidArgument
from ..settings import DEFAULT_ADAPTER_CACHE  # noqa: F401 (re-exported by serving)

if TYPE_CHECKING:  # torch-free at import: ``import tunesmith`` must not load torch
    from .lora import AdapterWeights

# A tuned model's adapter folder, as peft saves it.
WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def parse_cache_spec(spec: str) -> tuple[int, int | None]:
    """``"64,512MiB"`` -> ``(64, 536870912)``; ``"8"`` -> ``(8, None)`` (no byte bound)."""
    count_text, _, bytes_text = str(spec).strip().partition(",")
    problem = f"TUNESMITH_ADAPTER_CACHE: {spec!r} is not COUNT[,BYTES] such as 64,512MiB"
    if not count_text.strip().isdigit() or int(count_text) < 1:
        raise InvalidArgument(problem + " (COUNT must be a whole number from 1)")
    if not bytes_text.strip():
        return int(count_text), None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", bytes_text)
    if not m or m.group(2).lower() not in _UNITS or float(m.group(1)) <= 0:
        raise InvalidArgument(problem + " (BYTES is a positive number with B, MB, MiB, GiB...)")
    return int(count_text), int(float(m.group(1)) * _UNITS[m.group(2).lower()])


@dataclasses.dataclass
class Adapter:
    folder: Path
    weights: AdapterWeights
    pins: int = 0

    @property
    def name(self) -> str:
        return self.weights.name

    @property
    def nbytes(self) -> int:
        return self.weights.nbytes


class AdapterCache:
    """Adapters by folder over one base model; ``acquire`` loads (or reuses) and pins one."""

    def __init__(self, base_model, max_count: int, max_bytes: int | None):
        from .lora import BatchAdapters

        self.base_model = base_model
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.batch = BatchAdapters()  # the rows of the running forward, seen by every layer
        self._entries: OrderedDict[str, Adapter] = OrderedDict()
        self.loads = 0  # adapters read from disk so far (tests and benchmarks look)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._entries.values())

    def names(self) -> list[str]:
        return list(self._entries)

    def cached(self, folder: Path) -> bool:
        return adapter_name(folder) in self._entries

    def acquire(self, folder: Path) -> Adapter:
        name = adapter_name(folder)
        entry = self._entries.get(name)
        if entry is None:
            from .lora import read_adapter, wrap_layers

            weights = read_adapter(folder, name)
            wrap_layers(self.base_model, weights.layers, self.batch)
            self.loads += 1
            entry = self._entries[name] = Adapter(Path(folder), weights)
        self._entries.move_to_end(name)
        entry.pins += 1
        self._trim()
        return entry

    def release(self, entry: Adapter) -> None:
        entry.pins -= 1
        self._trim()

    def _over(self) -> bool:
        if len(self._entries) > self.max_count:
            return True
        return self.max_bytes is not None and self.nbytes > self.max_bytes

    def _trim(self) -> None:
        # Oldest first; adapters pinned by the running batch stay.
        for name in list(self._entries):
            if not self._over():
                return
            if self._entries[name].pins == 0:
                del self._entries[name]


def adapter_name(folder: Path, stamped: str = WEIGHTS_FILE) -> str:
    """The cache key of an adapter folder; a re-tuned folder (new file) gets a new key.
    ``stamped``: the file whose modification time stands for the folder's contents."""
    folder = Path(folder)
    weights = folder / stamped
    stamp = weights.stat().st_mtime_ns if weights.exists() else 0
    digest = hashlib.sha1(f"{folder.resolve()}|{stamp}".encode()).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9_]", "_", folder.name)[:40]
    return f"a_{safe}_{digest}"
