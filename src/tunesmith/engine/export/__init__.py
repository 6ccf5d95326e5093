"""Take a tuned model anywhere: a peft adapter, a merged transformers folder, a GGUF file for
llama.cpp / Ollama / LM Studio, or a GGUF LoRA adapter.

    adapter    adapter_config.json (naming the base) + adapter_model.safetensors, with the
               tokenizer and chat template; ``PeftModel.from_pretrained(base, folder)``
    merged     config, safetensors (the adapter merged in, float32), tokenizer with the chat
               template; ``AutoModelForCausalLM.from_pretrained(folder)``
    gguf       NAME-QUANT.gguf (F16, BF16, Q8_0 or F32) + an Ollama Modelfile
    gguf-lora  NAME-lora.gguf, the base as BASE-QUANT.gguf, and a Modelfile (FROM + ADAPTER)

Every export carries the prompt the model was tuned on (see :mod:`.templates`), because a
tuned model prompted differently answers worse. The engine knows nothing of HTTP, the
database or jobs: the service hands it an :class:`ExportSource` and a folder.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

from ...errors import FailedPrecondition, InvalidArgument
from ...types import TunedModelExport
from ..prompting import PromptFormat
from . import gguf_file, templates, weights
from .gguf_file import QUANTIZATIONS

__all__ = ["FORMATS", "QUANTIZATIONS", "ExportSource", "check", "export"]

FORMATS = ("adapter", "merged", "gguf", "gguf-lora")
GGUF_FORMATS = ("gguf", "gguf-lora")
DEFAULT_QUANTIZATION = "F16"
Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclasses.dataclass(frozen=True)
class ExportSource:
    """What an export reads: a tuned model's folder over its base's folder."""

    tuned_dir: Path
    """tunesmith's artifact: a peft adapter folder (LoRA) or a whole model folder (full)."""
    method: str
    """How it was tuned, as its record says: ``lora`` (``tuned_dir`` is an adapter over
    ``base_dir``) or ``full`` (``tuned_dir`` is the whole model)."""
    base_dir: Path
    """The base model's safetensors folder (config, tokenizer)."""
    name: str
    """The tuned model's id: file names and ``general.name``."""
    title: str = ""
    base_name: str = ""
    """The base's public name (``models/smollm2-135m-instruct``)."""
    base_reference: str | None = None
    """What the adapter's ``base_model_name_or_path`` names (a hub id, else the base folder)."""
    base_gguf: Path | None = None
    """The GGUF file the base came from, whose metadata (tokenizer above all) is kept."""
    prompt_template: str | None = None
    """The base's registry prompt, for a tuned folder without its own prompt file."""
    sampling: dict = dataclasses.field(default_factory=dict)
    """The tuned model's temperature / top_p / top_k, for the Modelfile's PARAMETERs."""

    @property
    def is_adapter(self) -> bool:
        return self.method == "lora"

    @property
    def model_dir(self) -> Path:
        """The folder of the model's own weights: the base under an adapter, else the tuned."""
        return self.base_dir if self.is_adapter else self.tuned_dir

    @property
    def adapter_dir(self) -> Path | None:
        return self.tuned_dir if self.is_adapter else None


def check(source: ExportSource, fmt: str, quantization: str | None) -> str | None:
    """Refuse an export that cannot be made, before any heavy work; returns the
    quantization to use (None for the formats without one)."""
    if fmt not in FORMATS:
        raise InvalidArgument(f"format: '{fmt}' is not one of {', '.join(FORMATS)}")
    if fmt in ("adapter", "gguf-lora") and not source.is_adapter:
        raise FailedPrecondition(
            f"{source.name} was fully tuned, so it has no adapter to export as '{fmt}'; "
            "export 'merged' or 'gguf'"
        )
    if fmt not in GGUF_FORMATS:
        if quantization is not None:
            raise InvalidArgument(
                f"quantization: applies to {' and '.join(GGUF_FORMATS)} only, not '{fmt}'"
            )
        return None
    quantization = quantization or DEFAULT_QUANTIZATION
    gguf_file.quantization_type(quantization)
    from transformers import AutoConfig

    folder = source.model_dir
    gguf_file.gguf_architecture(AutoConfig.from_pretrained(folder))
    return quantization


def export(
    source: ExportSource,
    fmt: str,
    out: Path,
    quantization: str | None = None,
    progress: Progress | None = None,
) -> TunedModelExport:
    """Write ``source`` as ``fmt`` into the folder ``out`` (made if missing)."""
    quantization = check(source, fmt, quantization)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda _what, _done, _total: None)
    tokenizer = weights.load_tokenizer(source.base_dir, source.tuned_dir)
    prompt = _prompt_template(source, tokenizer)
    chat = templates.chat_template(prompt, tokenizer)
    before = _stamps(out)
    if fmt == "adapter":
        readme = _adapter_readme(source)
        weights.write_adapter(
            source.tuned_dir, tokenizer, chat, _base_reference(source), readme, out
        )
    elif fmt == "merged":
        report("merging", 0, 1)
        model = weights.load_tuned(source.model_dir, source.adapter_dir)
        report("merging", 1, 1)
        prompt_file = source.tuned_dir / weights.PROMPT_FILE
        weights.write_merged(model, tokenizer, chat, prompt_file, out)
    elif fmt == "gguf":
        assert quantization is not None  # check() names one for every GGUF format
        report("merging", 0, 1)
        model = weights.load_tuned(source.model_dir, source.adapter_dir)
        report("merging", 1, 1)
        file = f"{source.name}-{quantization}.gguf"
        gguf_file.write_model(
            model,
            source.model_dir,
            out / file,
            quantization,
            name=source.title or source.name,
            chat_template=chat,
            base_gguf=source.base_gguf,
            progress=lambda done, total: report(file, done, total),
        )
        _modelfile(source, prompt, tokenizer, out, file)
    else:  # gguf-lora
        assert quantization is not None  # check() names one for every GGUF format
        lora = weights.read_lora(source.tuned_dir)
        base = weights.load_tuned(source.base_dir, None)  # the base alone
        lora_file = f"{source.name}-lora.gguf"
        base_file = f"{_slug(source.base_name or source.base_dir.name)}-{quantization}.gguf"
        gguf_file.write_lora(
            lora,
            base.config,
            out / lora_file,
            name=source.title or source.name,
            progress=lambda done, total: report(lora_file, done, total),
        )
        gguf_file.write_model(
            base,
            source.base_dir,
            out / base_file,
            quantization,
            name=source.base_name or source.base_dir.name,
            chat_template=chat,
            base_gguf=source.base_gguf,
            progress=lambda done, total: report(base_file, done, total),
        )
        _modelfile(source, prompt, tokenizer, out, base_file, adapter_file=lora_file)
    files = sorted(p for p, stamp in _stamps(out).items() if before.get(p) != stamp)
    return TunedModelExport(f"tunedModels/{source.name}", fmt, quantization, out, files)


def _stamps(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _prompt_template(source: ExportSource, tokenizer) -> str:
    tuned = PromptFormat.load(source.tuned_dir, tokenizer)
    return (tuned or PromptFormat(source.prompt_template, tokenizer)).template


def _modelfile(source, prompt, tokenizer, out: Path, model_file: str, adapter_file=None):
    text = templates.modelfile(
        model_file,
        prompt,
        tokenizer,
        adapter_file=adapter_file,
        parameters={k: source.sampling.get(k) for k in ("temperature", "top_p", "top_k")},
        title=f"tunedModels/{source.name}" + (f" ({source.title})" if source.title else ""),
    )
    (out / "Modelfile").write_text(text)


def _base_reference(source: ExportSource) -> str:
    return source.base_reference or str(source.base_dir)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", name.removeprefix("models/").lower()).strip("-") or "base"


def _adapter_readme(source: ExportSource) -> str:
    base = _base_reference(source)
    return f"""---
base_model: {base}
library_name: peft
---
# tunedModels/{source.name}{f" ({source.title})" if source.title else ""}

A LoRA adapter tuned by tunesmith over `{source.base_name or base}`.

It was tuned over the weights in tunesmith's base folder `{source.base_dir}`{
        f", converted from the GGUF file `{source.base_gguf.name}`" if source.base_gguf else ""
    }; `adapter_config.json` names `{base}` as its base.

```python
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

base = AutoModelForCausalLM.from_pretrained("{base}")
model = PeftModel.from_pretrained(base, "path/to/this/folder")
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
prompt = tokenizer.apply_chat_template(
    [{{"role": "user", "content": "..."}}], tokenize=False, add_generation_prompt=True
)
```

The chat template gives the prompt the model was tuned on (also in `tunesmith_prompt.json`).
"""
