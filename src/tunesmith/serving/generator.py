"""Generation: one copy of each base model per process, tuned adapters on top of it.

A :class:`ModelServer` keeps base models by folder and wraps each in a peft model the first
time an adapter is needed; adapters are loaded by name into that one wrapper and kept in an
LRU (bounded by count), so serving many tuned variants costs one base model in memory plus a
few MB per adapter. Evicted adapters reload from their safetensors files on the next request.
Fully tuned models (no adapter) are loaded as their own base.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from ..engine.prompting import PromptFormat
from ..engine.recipe import device, load_model, load_tokenizer
from ..types import Candidate, Generation


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Resolved sampling parameters (the service has filled in every default)."""

    temperature: float
    top_p: float
    top_k: int
    candidate_count: int
    max_output_tokens: int
    stop_sequences: tuple[str, ...] = ()


@dataclasses.dataclass
class _Base:
    model: object
    tokenizer: object
    fmt: PromptFormat
    peft: object | None = None  # the PeftModel wrapper, once an adapter is loaded
    adapters: OrderedDict = dataclasses.field(default_factory=OrderedDict)


class ModelServer:
    def __init__(self, max_adapters: int = 16):
        self.max_adapters = max_adapters
        self._bases: dict[Path, _Base] = {}
        self._lock = threading.RLock()

    def generate(
        self,
        base_dir: Path,
        prompt_template: str | None,
        text: str,
        sampling: Sampling,
        adapter_dir: Path | None = None,
        seed: int | None = None,
    ) -> Generation:
        with self._lock:
            base = self._base(base_dir, prompt_template)
            fmt = base.fmt
            model = base.model
            if adapter_dir is not None:
                fmt = PromptFormat.load(adapter_dir, base.tokenizer) or fmt
                model = self._with_adapter(base, adapter_dir)
            elif base.peft is not None:
                model = base.peft
            return self._sample(model, base, fmt, text, sampling, seed, adapter_dir is not None)

    def count_tokens(self, base_dir: Path, prompt_template: str | None, text: str) -> int:
        with self._lock:
            base = self._base(base_dir, prompt_template)
            return len(base.tokenizer(base.fmt.prompt(text), add_special_tokens=False)["input_ids"])

    def _base(self, base_dir: Path, prompt_template: str | None) -> _Base:
        key = Path(base_dir)
        if key not in self._bases:
            tokenizer = load_tokenizer(key)
            model = load_model(key).eval()
            model.requires_grad_(False)
            self._bases[key] = _Base(model, tokenizer, PromptFormat(prompt_template, tokenizer))
        return self._bases[key]

    def _with_adapter(self, base: _Base, adapter_dir: Path):
        from peft import PeftModel

        name = _adapter_name(adapter_dir)
        if name in base.adapters:
            base.adapters.move_to_end(name)
        else:
            if base.peft is None:
                base.peft = PeftModel.from_pretrained(base.model, adapter_dir, adapter_name=name)
            else:
                base.peft.load_adapter(adapter_dir, adapter_name=name)
            base.peft.eval()
            base.adapters[name] = adapter_dir
            while len(base.adapters) > self.max_adapters:
                old, _ = base.adapters.popitem(last=False)
                base.peft.delete_adapter(old)
        base.peft.set_adapter(name)
        return base.peft

    @torch.inference_mode()
    def _sample(self, model, base: _Base, fmt, text, s: Sampling, seed, adapted: bool):
        tok = base.tokenizer
        ids = tok(fmt.prompt(text), add_special_tokens=False, return_tensors="pt")["input_ids"]
        ids = ids.to(device())
        greedy = s.temperature <= 0
        kwargs = dict(
            max_new_tokens=s.max_output_tokens,
            num_return_sequences=s.candidate_count,
            do_sample=not greedy,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        if not greedy:
            kwargs.update(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k)
        if s.stop_sequences:
            kwargs.update(stop_strings=list(s.stop_sequences), tokenizer=tok)
        if seed is not None:
            torch.manual_seed(seed)
        if base.peft is not None and not adapted:
            with base.peft.disable_adapter():
                out = base.peft.generate(input_ids=ids, **kwargs)
        else:
            out = model.generate(input_ids=ids, **kwargs)
        candidates = []
        for row in out[:, ids.shape[1] :]:
            tokens = row.tolist()
            ended = tok.eos_token_id in tokens
            if ended:
                tokens = tokens[: tokens.index(tok.eos_token_id)]
            text_out = tok.decode(tokens, skip_special_tokens=True)
            cut = _cut_at_stop(text_out, s.stop_sequences)
            finish = (
                "STOP"
                if ended or cut is not None
                else ("MAX_TOKENS" if len(tokens) >= s.max_output_tokens else "STOP")
            )
            candidates.append(Candidate(cut if cut is not None else text_out, finish, len(tokens)))
        return Generation(candidates, prompt_token_count=int(ids.shape[1]))


def _cut_at_stop(text: str, stops) -> str | None:
    positions = [text.find(s) for s in stops if s and s in text]
    return text[: min(positions)] if positions else None


def _adapter_name(adapter_dir: Path) -> str:
    # peft adapter names may not contain dots; the folder name is store-chosen and safe.
    return "a_" + Path(adapter_dir).name.replace(".", "_").replace("-", "_")
