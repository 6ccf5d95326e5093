"""Generation: one copy of each base model per process, tuned adapters on top of it.

A :class:`ModelServer` keeps base models by folder, loaded on first use, and decodes them with
two engines: llama.cpp (:mod:`.llama`) where llama-cpp-python is installed and the model's
architecture has a GGUF form (the default, several times faster on a CPU), PyTorch for the
rest, loaded only when something needs it. On both, tuned LoRA adapters are read by folder and
kept in an LRU bounded by count (PyTorch's also by bytes, :mod:`.adapters`), so serving many
tuned variants costs one base model plus a few MB per adapter; a tuned model is servable as
soon as its folder exists (nothing to restart). Fully tuned models (no adapter) are their own
base.

Requests go through one scheduler (:mod:`.batcher`) that takes whatever arrived together for a
base model: llama.cpp decodes each tuned model's requests together, one tuned model after
another; PyTorch decodes them all as one batch across tuned models. Either answers through a
:class:`.Stream`.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.export.gguf_file import folder_config
from ..engine.prompting import PromptFormat
from ..engine.tokenizer import load_tokenizer
from ..errors import FailedPrecondition
from ..records.conversations import Conversation
from ..settings import DEFAULT_SERVING_ENGINE, DEFAULT_SERVING_WEIGHTS, get_settings
from ..types import Generation
from .adapters import DEFAULT_ADAPTER_CACHE, AdapterCache, parse_cache_spec
from .batcher import LoadedBase, Request, Scheduler, return_freed_memory
from .sampling import Sampling
from .stream import Stream

if TYPE_CHECKING:
    from .llama import LlamaBase

log = logging.getLogger("tunesmith.serving")

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
        engine: str = DEFAULT_SERVING_ENGINE,
        cache_dir: Path | None = None,
    ):
        self.weights = weights  # "float16" (see .weights) or "float32"
        self.engine = engine  # "auto", "llama.cpp" or "torch" (see .llama)
        self.cache_dir = cache_dir or get_settings().serving_cache_dir  # GGUF copies
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
            getattr(settings, "serving_engine", DEFAULT_SERVING_ENGINE),
            getattr(settings, "serving_cache_dir", None),
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
        return_freed_memory()
        if failed:
            raise failed[0]
        return loaded[0]

    def _load(self, folder: Path) -> LoadedBase:
        tokenizer = load_tokenizer(folder)
        eos = {tokenizer.eos_token_id}
        config = folder_config(folder)
        configured = _generation_eos(folder) or getattr(config, "eos_token_id", None)
        eos |= set(configured if isinstance(configured, list) else [configured])
        eos.discard(None)
        pad = tokenizer.pad_token_id

        def load_torch():
            from ..engine.models import load_model
            from .weights import halve

            model = load_model(folder).eval()
            model.requires_grad_(False)
            if self.weights == "float16":
                halve(model)
            return model, AdapterCache(model, self.max_adapters, self.max_adapter_bytes)

        base = LoadedBase(
            folder, tokenizer, eos, pad if pad is not None else 0, self.max_adapters, load_torch
        )
        base.llama = self._llama(folder, config, tokenizer)
        if base.llama is None:
            base.cache  # noqa: B018  (loads the PyTorch model now, in this passing thread)
        return base

    def _llama(self, folder: Path, config, tokenizer) -> LlamaBase | None:
        """llama.cpp's engine for the base in ``folder``, or None where PyTorch serves it."""
        if self.engine == "torch":
            return None
        from . import llama

        try:
            if not llama.available():
                raise FailedPrecondition(
                    "llama-cpp-python is not installed (pip install 'tunesmith[llama-cpp]')"
                )
            gguf = llama.base_gguf(folder, config, tokenizer, self.weights, self.cache_dir)
            return llama.LlamaBase(
                config, gguf, self.cache_dir, self.max_adapters, self.max_adapter_bytes
            )
        except Exception as e:  # no GGUF form, or llama.cpp refused it ("failed to load")
            reason = str(e) if isinstance(e, FailedPrecondition) else f"{type(e).__name__}: {e}"
            if self.engine == "llama.cpp":
                raise FailedPrecondition(f"TUNESMITH_SERVING_ENGINE=llama.cpp: {reason}") from e
            log.info("base model %s is served by PyTorch: %s", folder.name, reason)
            return None

    @staticmethod
    def _encode(base: LoadedBase, prompt: str) -> list[int]:
        with base.lock:  # a fast tokenizer may not be entered by two threads at once
            return base.tokenizer(prompt, add_special_tokens=False)["input_ids"]


def _generation_eos(folder: Path):
    """``eos_token_id`` of the folder's generation_config.json (a chat model's end-of-turn
    token is often only there), without loading the model."""
    try:
        return json.loads((folder / "generation_config.json").read_text()).get("eos_token_id")
    except (OSError, ValueError):
        return None
