"""The PyTorch engine: what llama.cpp does not serve (see :mod:`.llama`), or everything with
``TUNESMITH_SERVING_ENGINE=torch``, decoded as one batch.

* rows of different tuned models share the batch: the base's linear layers apply each row's
  own LoRA (:mod:`.lora`, none for rows on the plain base), so the base's weights are read
  once per step for everyone;
* prompts are left-padded, with position ids counted from each row's first real token, and
  one KV cache serves the batch; rows that finish leave the batch and its cache at once;
* every step decodes on :mod:`.threads`' count: one thread while a tuning run trains. torch
  keeps that count per thread (a trainer in a thread of this process keeps its own).

The decoding loop itself (sampling, stop sequences, streaming) is :func:`.batcher.stream_rows`,
which both engines run.
"""

from __future__ import annotations

import inspect
import logging
import threading

import numpy as np
import torch

from ..errors import FailedPrecondition
from .batcher import LoadedBase, Request, make_rows, stream_rows
from .lora import AdapterWeights
from .threads import Follower

log = logging.getLogger("tunesmith.serving")
_local = threading.local()  # each decoding thread's own Follower: torch's count is per thread


def run(base: LoadedBase, requests: list[Request]) -> None:
    held = []
    ready: list[tuple[Request, AdapterWeights | None]] = []
    for r in requests:
        if r.stream.cancelled:
            continue
        if r.adapter_dir is None:
            ready.append((r, None))
            continue
        try:
            entry = base.cache.acquire(r.adapter_dir)
        except Exception as e:
            log.exception("loading adapter %s failed", r.adapter_dir)
            r.stream.put(FailedPrecondition(f"the tuned model's adapter could not be loaded: {e}"))
            continue
        held.append(entry)
        ready.append((r, entry.weights))
    try:
        if ready:
            _decode(base, ready)
    finally:
        for entry in held:
            base.cache.release(entry)


@torch.inference_mode()
def _decode(base: LoadedBase, ready: list[tuple[Request, AdapterWeights | None]]) -> None:
    base.cache.batch.begin(
        [adapter for r, adapter in ready for _ in range(r.sampling.candidate_count)]
    )
    try:
        _decode_rows(base, ready)
    finally:
        base.cache.batch.end()


def _decode_rows(base: LoadedBase, ready: list[tuple[Request, AdapterWeights | None]]) -> None:
    rows = make_rows(ready)
    width = max(len(row.request.prompt_ids) for row in rows)
    ids = torch.full((len(rows), width), base.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):  # left padding: every row's next token lands in one column
        prompt = row.request.prompt_ids
        ids[b, width - len(prompt) :] = torch.tensor(prompt)
        mask[b, width - len(prompt) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    from transformers import DynamicCache

    kv = DynamicCache(config=base.model.config)
    logits = _forward(base, ids, mask, positions, kv, logits_to_keep=1)
    next_position = positions[:, -1:] + 1

    def step(tokens: list[int], keep: list[int] | None) -> np.ndarray:
        nonlocal mask, next_position
        if keep is not None:  # finished rows leave the batch and the cache
            index = torch.tensor(keep)
            kv.batch_select_indices(index)
            base.cache.batch.select(index)
            mask, next_position = mask[index], next_position[index]
        mask = torch.cat([mask, torch.ones((len(tokens), 1), dtype=torch.long)], dim=1)
        logits = _forward(base, torch.tensor(tokens)[:, None], mask, next_position, kv)
        next_position = next_position + 1
        return logits

    stream_rows(rows, logits, step)


def _forward(base: LoadedBase, ids, mask, positions, kv, **kwargs) -> np.ndarray:
    _follow_threads()
    kwargs[_cache_keyword(type(base.model))] = kv
    out = base.model(
        input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs
    )
    return out.logits[:, -1, :].float().numpy()


def _follow_threads() -> None:
    follow = getattr(_local, "follow", None)
    if follow is None:
        follow = _local.follow = Follower(torch.get_num_threads, torch.set_num_threads)
    follow()


_CACHE_KEYWORDS: dict[type, str] = {}


def _cache_keyword(model_class: type[torch.nn.Module]) -> str:
    """The forward's name for the KV cache: ``cache`` from transformers 5 (where
    ``past_key_values`` still works but warns on every call, into the user's terminal),
    ``past_key_values`` before (where ``cache`` would be swallowed by ``**kwargs``, unused)."""
    if model_class not in _CACHE_KEYWORDS:
        parameters = inspect.signature(model_class.forward).parameters
        _CACHE_KEYWORDS[model_class] = "cache" if "cache" in parameters else "past_key_values"
    return _CACHE_KEYWORDS[model_class]
