"""The scheduler: requests that arrive together for one base model are decoded as one batch.

One thread (``tunesmith-generation``) takes the waiting requests for the base model of the
oldest one, expands each into its candidates (rows), and decodes all rows together:

* rows of different tuned models share the batch: the base's linear layers apply each row's
  own LoRA (:mod:`.lora`, none for rows on the plain base), so the base's weights are read
  once per step for everyone;
* prompts are left-padded, with position ids counted from each row's first real token, and
  one KV cache serves the batch; rows that finish (end token, stop sequence, max tokens, or a
  caller that went away) leave the batch and its cache at once;
* each row samples with its own temperature / top-k / top-p (:mod:`.sampling`).

Requests arriving during a batch wait for the next one. The wait is bounded: past
``max_queue`` waiting requests :meth:`Scheduler.submit` raises ``ResourceExhausted`` (HTTP
429) instead of letting the queue grow.
"""

from __future__ import annotations

import atexit
import dataclasses
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .llama import LlamaBase

from ..errors import FailedPrecondition, ResourceExhausted, TunesmithError
from ..records.generation import Delta
from ..types import Candidate, Generation
from .adapters import AdapterCache
from .lora import AdapterWeights
from .sampling import RowParams, Sampling, TextTracker, next_tokens
from .stream import Stream

log = logging.getLogger("tunesmith.serving")

# An idle scheduler gathers simultaneous requests into one batch: it waits while more keep
# arriving, GATHER_SECONDS at a time, at most GATHER_MAX_SECONDS. A burst of callers submits
# over several milliseconds (each tokenises its prompt first); one that missed the batch
# would wait for the whole batch to end, doubling its time.
GATHER_SECONDS = 0.005
GATHER_MAX_SECONDS = 0.05


@dataclasses.dataclass
class LoadedBase:
    """One base model in memory: its tokenizer, and the engines that decode it.

    ``llama`` (:mod:`.llama`) decodes what it can where llama-cpp-python is installed; the
    PyTorch model and its adapters (``model``, ``cache``) are loaded by ``load_torch`` on
    first need, so a base that llama.cpp serves whole never holds a second copy in PyTorch.
    """

    folder: Path
    tokenizer: PreTrainedTokenizerBase
    eos_ids: set[int]
    pad_id: int
    max_adapters: int
    load_torch: Callable[[], tuple[PreTrainedModel, AdapterCache]]
    llama: LlamaBase | None = None
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)  # the tokenizer's
    _torch: tuple[PreTrainedModel, AdapterCache] | None = None
    _torch_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def model(self) -> PreTrainedModel:
        return self._torch_part()[0]

    @property
    def cache(self) -> AdapterCache:
        return self._torch_part()[1]

    @property
    def torch_loaded(self) -> bool:
        return self._torch is not None

    def _torch_part(self) -> tuple[PreTrainedModel, AdapterCache]:
        with self._torch_lock:
            if self._torch is None:
                self._torch = self.load_torch()
            return self._torch

    def decode(self, tokens: list[int]) -> str:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        assert isinstance(text, str)  # one sequence in, one text out
        return text


@dataclasses.dataclass
class Request:
    base: LoadedBase
    adapter_dir: Path | None
    prompt_ids: list[int]
    sampling: Sampling
    stream: Stream = dataclasses.field(default_factory=Stream)


class Scheduler:
    def __init__(self, max_queue: int = 64, max_rows: int = 32):
        self.max_queue = max_queue
        self.max_rows = max_rows
        self._pending: deque[Request] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.batches = 0  # batches run so far, and the most rows one had (tests look)
        self.largest_batch = 0

    def submit(self, request: Request) -> Stream:
        with self._cond:
            if self._closing:
                raise FailedPrecondition("the generation server is shutting down")
            if len(self._pending) >= self.max_queue:
                raise ResourceExhausted(
                    f"generation queue is full ({self.max_queue} requests waiting): retry later"
                )
            self._pending.append(request)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tunesmith-generation", daemon=True
                )
                self._thread.start()
                # A generation thread still parked in torch when the interpreter finalises
                # aborts the process ("terminate called without an active exception", exit
                # 134): end it before then.
                atexit.register(self.close)
            self._cond.notify()
        return request.stream

    def close(self, timeout: float = 10.0) -> None:
        """Stop the generation thread once the batch it is running ends."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                idle = not self._pending
                while not self._pending and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
            if idle:
                self._gather()
            batch = self._take()
            try:
                run_batch(batch)
            except Exception as e:  # a bug must fail these requests, not the thread
                log.exception("generation batch failed")
                for r in batch:
                    r.stream.put(e if isinstance(e, TunesmithError) else internal(e))

    def _gather(self) -> None:
        deadline, seen = time.monotonic() + GATHER_MAX_SECONDS, 0
        while time.monotonic() < deadline:
            with self._cond:
                waiting = len(self._pending)
            if waiting == seen or waiting >= self.max_rows:
                return
            seen = waiting
            time.sleep(GATHER_SECONDS)

    def _take(self) -> list[Request]:
        """The oldest request's base model's waiting requests, in order, up to the bounds."""
        with self._cond:
            base = self._pending[0].base
            batch: list[Request] = []
            rows, adapters = 0, set[Path | None]()
            for r in list(self._pending):
                if r.base is not base:
                    continue
                new = {r.adapter_dir} - adapters - {None}
                if batch and (
                    rows + r.sampling.candidate_count > self.max_rows
                    or len(adapters | new) > base.max_adapters
                ):
                    break
                batch.append(r)
                rows += r.sampling.candidate_count
                adapters |= new
                self._pending.remove(r)
            self.batches += 1
            self.largest_batch = max(self.largest_batch, rows)
            return batch


def run_batch(requests: list[Request]) -> None:
    """Decode ``requests`` (all on one base model), streaming as tokens come: through
    llama.cpp one at a time where it serves them, the rest together in PyTorch."""
    base = requests[0].base
    if base.llama is not None:
        requests = base.llama.run(requests)
    if requests:
        _run_torch(base, requests)


def _run_torch(base: LoadedBase, requests: list[Request]) -> None:
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


@dataclasses.dataclass
class _Row:
    request: Request
    index: int  # candidate index within its request
    adapter: AdapterWeights | None
    text: TextTracker


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


def make_rows(ready: list[tuple[Request, AdapterWeights | None]]) -> list[_Row]:
    """One row per candidate of each request (with its adapter, on the PyTorch path)."""
    return [
        _Row(
            r,
            i,
            adapter,
            TextTracker(
                r.base.decode,
                r.sampling.stop_sequences,
                r.sampling.max_output_tokens,
                r.base.eos_ids,
            ),
        )
        for r, adapter in ready
        for i in range(r.sampling.candidate_count)
    ]


def stream_rows(
    rows: list[_Row],
    logits: np.ndarray,
    step: Callable[[list[int], list[int] | None], np.ndarray],
) -> None:
    """The decoding loop of both engines, from the prompts' logits ([rows, vocab]): choose
    each row's token, stream the text that became safe, answer the requests whose candidates
    all finished, then ``step(tokens, keep)`` gives the next logits for the rows still going
    (``keep``: their indexes among the last step's rows, when some finished; else None)."""
    params = RowParams([row.request.sampling for row in rows], [row.index for row in rows])
    waiting = {id(row.request): row.request for row in rows}
    by_request: dict[int, list[_Row]] = {}
    for row in rows:  # every row, also after finished ones leave the batch
        by_request.setdefault(id(row.request), []).append(row)
    while True:
        chosen = next_tokens(logits, params)
        deltas: dict[int, dict[int, str]] = {}
        for row, token in zip(rows, chosen, strict=True):
            if row.request.stream.cancelled:
                row.text.cancel()
                continue
            text = row.text.push(token)
            if text:
                deltas.setdefault(id(row.request), {})[row.index] = text
        for key, texts in deltas.items():
            waiting[key].stream.put(Delta(texts))
        _finish_done(by_request, waiting)
        keep = [b for b, row in enumerate(rows) if row.text.finish is None]
        if not keep:
            return
        kept = None
        if len(keep) < len(rows):
            kept = keep
            rows, chosen = [rows[b] for b in keep], [chosen[b] for b in keep]
            params.select(keep)
        logits = step(chosen, kept)


def _forward(base: LoadedBase, ids, mask, positions, kv, **kwargs) -> np.ndarray:
    kwargs[_cache_keyword(type(base.model))] = kv
    out = base.model(
        input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs
    )
    return out.logits[:, -1, :].float().numpy()


_CACHE_KEYWORDS: dict[type, str] = {}


def _cache_keyword(model_class: type[torch.nn.Module]) -> str:
    """The forward's name for the KV cache: ``cache`` from transformers 5 (where
    ``past_key_values`` still works but warns on every call, into the user's terminal),
    ``past_key_values`` before (where ``cache`` would be swallowed by ``**kwargs``, unused)."""
    if model_class not in _CACHE_KEYWORDS:
        parameters = inspect.signature(model_class.forward).parameters
        _CACHE_KEYWORDS[model_class] = "cache" if "cache" in parameters else "past_key_values"
    return _CACHE_KEYWORDS[model_class]


def _finish_done(by_request: dict[int, list[_Row]], waiting: dict[int, Request]) -> None:
    """Send the whole answer to each request whose candidates have all finished."""
    for key in list(waiting):
        mine = by_request[key]
        if any(row.text.finish is None for row in mine):
            continue
        request = waiting.pop(key)
        candidates = []
        for r in mine:
            assert r.text.finish is not None  # every row finished (checked above)
            candidates.append(Candidate(r.text.text, r.text.finish, len(r.text.tokens)))
        request.stream.put(Generation(candidates, prompt_token_count=len(request.prompt_ids)))


def internal(e: Exception) -> TunesmithError:
    from ..errors import Internal

    return Internal(f"generation failed: {type(e).__name__}: {e}")
