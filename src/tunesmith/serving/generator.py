"""Generation: one copy of each base model per process, tuned adapters on top of it.

A :class:`ModelServer` keeps base models by folder, loaded on first use. Tuned LoRA adapters
are read by folder, applied by the base's own linear layers (:mod:`.lora`) and kept in an LRU
bounded by count and bytes (:mod:`.adapters`), so serving many tuned variants costs one base model plus a few
MB per adapter; an evicted adapter reloads from its safetensors file on its next request, and
a tuned model is servable as soon as its folder exists (nothing to restart). Fully tuned models
(no adapter) are their own base.

Requests go through one scheduler (:mod:`.batcher`) that decodes whatever arrived together for
a base model as one batch, across tuned models, and answers through a :class:`.Stream`.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..engine.prompting import PromptFormat
from ..engine.recipe import load_model, load_tokenizer
from ..records.conversations import Conversation
from ..settings import DEFAULT_SERVING_WEIGHTS
from ..types import Generation
from .adapters import DEFAULT_ADAPTER_CACHE, AdapterCache, parse_cache_spec
from .batcher import LoadedBase, Request, Scheduler
from .sampling import Sampling
from .stream import Stream
from .weights import halve

DEFAULT_QUEUE = 64
DEFAULT_BATCH_ROWS = 32
MIN_BATCH_ROWS = 8  # a request may ask for 8 candidates, which decode in one batch


class ModelServer:
    def __init__(
        self,
        adapter_cache: str = DEFAULT_ADAPTER_CACHE,
        max_queue: int = DEFAULT_QUEUE,
        max_batch_rows: int = DEFAULT_BATCH_ROWS,
        weights: str = DEFAULT_SERVING_WEIGHTS,
    ):
        self.weights = weights  # "float16" (see .weights) or "float32"
        self.max_adapters, self.max_adapter_bytes = parse_cache_spec(adapter_cache)
        self.scheduler = Scheduler(max(1, max_queue), max(MIN_BATCH_ROWS, max_batch_rows))
        self._bases: dict[Path, LoadedBase] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> ModelServer:
        return cls(
            getattr(settings, "adapter_cache", DEFAULT_ADAPTER_CACHE),
            getattr(settings, "generation_queue", DEFAULT_QUEUE),
            getattr(settings, "generation_batch_rows", DEFAULT_BATCH_ROWS),
            getattr(settings, "serving_weights", DEFAULT_SERVING_WEIGHTS),
        )

    def submit(
        self,
        base_dir: Path,
        prompt_template: str | None,
        text: str | Conversation,
        sampling: Sampling,
        adapter_dir: Path | None = None,
    ) -> Stream:
        """Queue a request; its answer streams back. Raises ResourceExhausted when full."""
        base = self.base(base_dir)
        ids = self._prompt_ids(base, prompt_template, text, adapter_dir)
        return self.scheduler.submit(Request(base, adapter_dir, ids, sampling))

    def generate(
        self,
        base_dir: Path,
        prompt_template: str | None,
        text: str | Conversation,
        sampling: Sampling,
        adapter_dir: Path | None = None,
    ) -> Generation:
        return self.submit(base_dir, prompt_template, text, sampling, adapter_dir).result()

    def count_tokens(
        self,
        base_dir: Path,
        prompt_template: str | None,
        text: str | Conversation,
        adapter_dir: Path | None = None,
    ) -> int:
        return len(self._prompt_ids(self.base(base_dir), prompt_template, text, adapter_dir))

    def _prompt_ids(
        self,
        base: LoadedBase,
        prompt_template: str | None,
        text: str | Conversation,
        adapter_dir: Path | None,
    ) -> list[int]:
        """The prompt's token ids, in the format the tuned model learned (kept beside its
        adapter), else the base model's; a conversation is rendered by the rule training
        used (:meth:`PromptFormat.prompt_ids`)."""
        conv = text if isinstance(text, Conversation) else Conversation.ask(text)
        with base.lock:  # a fast tokenizer may not be entered by two threads at once
            fmt = PromptFormat(prompt_template, base.tokenizer)
            if adapter_dir is not None:
                fmt = PromptFormat.load(adapter_dir, base.tokenizer) or fmt
            return fmt.prompt_ids(conv)

    def base(self, base_dir: Path) -> LoadedBase:
        """The base model in ``base_dir``, loaded once per process."""
        key = Path(base_dir).resolve()
        with self._lock:
            if key not in self._bases:
                self._bases[key] = self._load_apart(key)
            return self._bases[key]

    def _load_apart(self, folder: Path) -> LoadedBase:
        """:meth:`_load` in a thread of its own that ends with it. A thread that ran torch's
        parallel kernels keeps an OpenMP thread pool while it lives, and a live one beside
        the generation thread's made every decoding step about 2x slower on 2 cores (a
        request thread that loaded, then waited in the server's pool); an ended one does not."""
        loaded: list[LoadedBase] = []
        failed: list[BaseException] = []

        def load() -> None:
            try:
                loaded.append(self._load(folder))
            except BaseException as e:  # raised in the caller's thread below
                failed.append(e)

        thread = threading.Thread(target=load, name="tunesmith-load")
        thread.start()
        thread.join()
        if failed:
            raise failed[0]
        return loaded[0]

    def _load(self, folder: Path) -> LoadedBase:
        tokenizer = load_tokenizer(folder)
        model = load_model(folder).eval()
        model.requires_grad_(False)
        if self.weights == "float16":
            halve(model)
        eos = {tokenizer.eos_token_id}
        configured = getattr(model.generation_config, "eos_token_id", None)
        eos |= set(configured if isinstance(configured, list) else [configured])
        eos.discard(None)
        pad = tokenizer.pad_token_id
        cache = AdapterCache(model, self.max_adapters, self.max_adapter_bytes)
        return LoadedBase(model, tokenizer, cache, eos, pad if pad is not None else 0)

    @staticmethod
    def _encode(base: LoadedBase, prompt: str) -> list[int]:
        with base.lock:  # a fast tokenizer may not be entered by two threads at once
            return base.tokenizer(prompt, add_special_tokens=False)["input_ids"]
