"""The scheduler: requests that arrive together for one base model are decoded together.

One thread (``tunesmith-generation``) takes the waiting requests for the base model of the
oldest one and expands each into its candidates (rows). llama.cpp decodes what it can
(:mod:`.llama`: the rows of one tuned model together, two tuned models at a time on two
cores, the second in a thread of its own), PyTorch the rest
(:mod:`.pytorch`: rows of different tuned models in one batch, each with its own LoRA). Both
run the one decoding loop here, :func:`stream_rows`: each row samples with its own
temperature / top-k / top-p (:mod:`.sampling`), streams the text that became safe, and leaves
the batch when it finishes (end token, stop sequence, max tokens, or a caller that went away).

Requests arriving during a batch wait for the next one. The wait is bounded: past
``max_queue`` waiting requests :meth:`Scheduler.submit` raises ``ResourceExhausted`` (HTTP
429) instead of letting the queue grow. Nothing here imports torch: a server that llama.cpp
serves whole never loads it.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .adapters import AdapterCache
    from .llama import LlamaBase
    from .lora import AdapterWeights

from ..errors import FailedPrecondition, ResourceExhausted, TunesmithError
from ..records.generation import Delta
from ..types import Candidate, Generation
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
        with self.lock:  # llama.cpp's contexts stream their answers from several threads
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
            if idle:  # the last burst's requests and adapter loads left freed heap behind
                return_freed_memory()
            with self._cond:
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


def return_freed_memory() -> None:
    """Give freed heap back to the system (glibc keeps it otherwise): the tokenizer's parse
    of ``tokenizer.json`` alone leaves ~30 MiB of free pages in a server's resident memory,
    and a burst of 64 requests over 25 tuned models 160-220 MiB (15 ms to trim). A no-op
    where the C library has no ``malloc_trim``."""
    trim = _libc("malloc_trim")
    if trim is not None:
        trim(0)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
LARGE_BUFFER_BYTES = 4 << 20


def map_large_buffers() -> None:
    """Allocate blocks of 4 MiB and more as mappings of their own, unmapped when freed, in a
    serving process tunesmith owns (``tunesmith serve``, the embedded generation server).
    glibc raises its threshold for that to the largest block freed so far, so once tuned
    models' adapters (llama.cpp's buffers of ~9 MiB each on the default base) have been
    evicted, the next ones are carved from the heap, and evicting and reloading them
    fragments it: with 25 tuned models in use a server's peak memory grew to ~920 MiB against
    ~660 with the threshold fixed (docs/serving.md). The heap's top is kept until 8 MiB are
    free there, as glibc's moving threshold would, so that smaller blocks freed and taken again
    at every step do not go back to the system each time. Process-wide, so never called in a
    user's own process. A no-op where the C library has no ``mallopt``."""
    mallopt = _libc("mallopt")
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES)
        mallopt(M_TRIM_THRESHOLD, 2 * LARGE_BUFFER_BYTES)


@functools.cache
def _libc(name: str):
    """The C library's function ``name``, or None; looked up once (``find_library`` runs
    ``ldconfig`` in a subprocess), as the scheduler trims each time its queue empties."""
    import ctypes
    import ctypes.util

    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c")), name)
    except (OSError, AttributeError, TypeError):
        return None


def run_batch(requests: list[Request]) -> None:
    """Decode ``requests`` (all on one base model), streaming as tokens come: through
    llama.cpp one at a time where it serves them, the rest together in PyTorch."""
    base = requests[0].base
    if base.llama is not None:
        requests = base.llama.run(requests)
    if requests:
        from . import pytorch  # torch loads only where PyTorch serves something

        pytorch.run(base, requests)


@dataclasses.dataclass
class Row:
    """One candidate of a request being decoded."""

    request: Request
    index: int  # candidate index within its request
    adapter: AdapterWeights | None
    text: TextTracker


def make_rows(ready: list[tuple[Request, AdapterWeights | None]]) -> list[Row]:
    """One row per candidate of each request (with its adapter, on the PyTorch path)."""
    return [
        Row(
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
    rows: list[Row],
    logits: np.ndarray,
    step: Callable[[list[int], list[int] | None], np.ndarray],
    siblings: list[Row] | None = None,
) -> None:
    """The decoding loop of both engines, from the prompts' logits ([rows, vocab]): choose
    each row's token, stream the text that became safe, answer the requests whose candidates
    all finished, then ``step(tokens, keep)`` gives the next logits for the rows still going
    (``keep``: their indexes among the last step's rows, when some finished; else None).
    ``siblings``: every row of these requests, when their candidates are decoded in several
    runs (a request is answered once all its rows, here and in other runs, have finished)."""
    params = RowParams([row.request.sampling for row in rows], [row.index for row in rows])
    waiting = {id(row.request): row.request for row in rows}
    by_request: dict[int, list[Row]] = {}
    for row in rows if siblings is None else siblings:  # also after finished rows leave
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


def _finish_done(by_request: dict[int, list[Row]], waiting: dict[int, Request]) -> None:
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
