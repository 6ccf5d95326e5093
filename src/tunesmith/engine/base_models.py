"""Base models: the registry (``base_models.json``), name resolution, and materialising.

A base model is named one of three ways:

* a registry name (``models/smollm2-135m-instruct``) or an alias of the default
  (``models/text-bison-001``, ``text-bison@001``, ...);
* a local folder with ``config.json`` (a transformers checkpoint) or a ``.gguf`` file;
* a Hugging Face model id (``HuggingFaceTB/SmolLM2-135M``), fetched once when online;
* a name the operator gave one of those (``models/NAME``, ``TUNESMITH_BASE_MODELS``).

Which of these a caller may name is the service's rule (:mod:`tunesmith.service.catalog`):
a server takes only what its operator offers; this module only turns names into sources.

Whatever the source, :func:`materialize` turns it into a plain safetensors folder under
``TUNESMITH_HOME/base-models`` once, so later loads take a second or two. GGUF files of an
architecture :mod:`.gguf_import` knows (SmolLM2's llama) are dequantised directly, in a few
seconds; other files and hub models go through transformers (~25 s for SmolLM2 that way).
Registry data lives in the JSON file, not in code.

A packaged model (one whose source is a Python package) converts to the same weights in every
home of one installation, so ``make setup`` converts it once into the installation's shared
cache (:func:`shared_dir`, ``python -m tunesmith.jobs.prepare --shared``) and a fresh home
reads it from there instead of converting again. An entry records the package version it was
made from; one made from another version is ignored (and converted into the home as before).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from ..errors import FailedPrecondition, InvalidArgument, NotFound
from . import hub

_REGISTRY = Path(__file__).with_name("base_models.json")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclasses.dataclass(frozen=True)
class BaseModelSpec:
    name: str
    base_model_id: str
    version: str
    display_name: str
    description: str
    input_token_limit: int
    output_token_limit: int
    temperature: float
    max_temperature: float
    top_p: float
    top_k: int
    source: dict
    prompt_template: str | None = None
    """How an input becomes a prompt (``{input}`` is replaced); None: the tokenizer's chat
    template when it has one, else the input and a newline."""
    hub_id: str | None = None
    """The Hugging Face id of the model the packaged file was made from (what an exported
    peft adapter names as its base)."""

    @property
    def available(self) -> bool:
        """Whether this machine can load it (a packaged model needs its package)."""
        package = self.source.get("package")
        if package is None:
            return True
        try:
            importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            return False
        return True


@cache
def _registry() -> tuple[dict[str, BaseModelSpec], frozenset[str]]:
    raw = json.loads(_REGISTRY.read_text())
    specs = {m["name"]: BaseModelSpec(**m) for m in raw["models"]}
    return specs, frozenset(raw["aliases"])


def registered_models() -> list[BaseModelSpec]:
    """The registry's models that this machine can load."""
    return [spec for spec in _registry()[0].values() if spec.available]


def registry_names() -> frozenset[str]:
    """Every name the registry answers to: its models' names and the default's aliases."""
    specs, aliases = _registry()
    return frozenset(specs) | aliases


def resolve(name: str, default: str, offered: Mapping[str, str] | None = None) -> BaseModelSpec:
    """The base model a ``source_model`` / ``base_model`` string names.

    ``offered`` maps the operator's own names (NAME of ``models/NAME``) to their sources.
    """
    specs, aliases = _registry()
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument("base_model: a model name is required")
    if name in aliases or f"models/{name}" in aliases:
        name = default
    key = name if name.startswith("models/") else f"models/{name}"
    if key in specs:
        spec = specs[key]
        if not spec.available:
            raise FailedPrecondition(
                f"{spec.name} needs the package '{spec.source['package']}'; "
                f"install it with: pip install {spec.source['package']}"
            )
        return spec
    if offered and key.removeprefix("models/") in offered:
        short = key.removeprefix("models/")
        return offered_spec(short, offered[short])
    return _custom(name)


def offered_spec(name: str, source: str) -> BaseModelSpec:
    """``models/NAME``, the base model an operator offers from ``source`` (a model folder, a
    .gguf file or a hub id). Its public record names it, never the folder it is in."""
    spec = _custom(source)
    origin = spec.source.get("repo_id") or (
        "a model folder" if spec.source["kind"] == "folder" else "a GGUF file"
    )
    return dataclasses.replace(
        spec,
        name=f"models/{name}",
        base_model_id=name,
        display_name=name,
        description=f"Offered by this server's operator, from {origin}",
        hub_id=spec.source.get("repo_id"),
    )


def _custom(name: str) -> BaseModelSpec:
    path = Path(name.removeprefix("models/")).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        _require_safetensors(path)
        source = {"kind": "folder", "path": str(path.resolve())}
    elif path.is_file() and path.suffix == ".gguf":
        source = {"kind": "gguf_file", "path": str(path.resolve())}
    elif _HUB_ID.match(name.removeprefix("models/")) and not path.exists():
        source = {"kind": "hub", "repo_id": name.removeprefix("models/")}
    else:
        raise NotFound(
            f"base model '{name}' not found: not a registered model, a local model folder, "
            "a .gguf file or a Hugging Face model id"
        )
    short = name.rstrip("/").rsplit("/", 1)[-1]
    return BaseModelSpec(
        name=name,
        base_model_id=short,
        version="custom",
        display_name=short,
        description=f"Custom base model from {source.get('path') or source.get('repo_id')}",
        input_token_limit=4096,
        output_token_limit=2048,
        temperature=0.7,
        max_temperature=2.0,
        top_p=0.95,
        top_k=40,
        source=source,
    )


PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")


def _require_safetensors(folder: Path) -> None:
    """Weights load from safetensors only: a pickle file (``pytorch_model.bin``) can run code
    when it is loaded, so a folder without safetensors is refused when it is named."""
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern))
    holds = f"holds {', '.join(pickles)} but no" if pickles else "holds no"
    raise InvalidArgument(
        f"base model folder {folder} {holds} .safetensors weights; tunesmith loads safetensors "
        "only (pickle files can run code when loaded). Convert it to safetensors once, e.g. "
        "for a checkpoint you trust: AutoModelForCausalLM.from_pretrained(folder)"
        ".save_pretrained(new_folder), then name new_folder"
    )


Progress = Callable[[float | None], None]
"""Called while a base model is converted: the share done (0 to 1), None when not measured."""


COMPLETE = ".complete"
"""Written last into a base folder tunesmith converted: the folder is whole, and tunesmith's."""


def materialize(
    spec: BaseModelSpec, base_models_dir: Path, on_progress: Progress | None = None
) -> Path:
    """A safetensors folder (weights, config, tokenizer) for ``spec``, made once.

    Plain local folders are used where they are. Everything else is converted into
    ``base_models_dir/<slug>`` under a file lock, so concurrent workers convert only once.
    ``on_progress`` is called only when this call converts (or waits for another worker's
    conversion): that is the first run's one-time preparation.
    """
    if spec.source["kind"] == "folder":
        return Path(spec.source["path"])
    target = base_models_dir / _slug(spec)
    if (target / COMPLETE).exists():
        return target
    shared = shared_copy(spec)
    if shared is not None:
        return shared
    on_progress = on_progress or (lambda _fraction: None)
    on_progress(None)  # from here on this run prepares the base (or waits for one that does)
    base_models_dir.mkdir(parents=True, exist_ok=True)
    with open(base_models_dir / f"{_slug(spec)}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / COMPLETE).exists():
            return target
        tmp = base_models_dir / f"{_slug(spec)}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        _convert(spec, tmp, base_models_dir, on_progress)
        (tmp / COMPLETE).write_text(spec.name)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


def is_materialized(spec: BaseModelSpec, base_models_dir: Path) -> bool:
    """Whether :func:`materialize` has nothing left to fetch or convert for ``spec``."""
    if spec.source["kind"] == "folder":
        return True
    return (base_models_dir / _slug(spec) / COMPLETE).exists() or shared_copy(spec) is not None


SHARED_ENV = "TUNESMITH_SHARED_BASE_MODELS"


def shared_dir() -> Path:
    """The installation's cache of converted packaged models: ``TUNESMITH_SHARED_BASE_MODELS``,
    else ``share/tunesmith/base-models`` in this Python environment (gone with the venv)."""
    configured = os.environ.get(SHARED_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(sys.prefix) / "share" / "tunesmith" / "base-models"


def _package_stamp(spec: BaseModelSpec) -> str | None:
    """What a shared entry must have been made from: the package's name and version (None:
    not a packaged model, or its package is not installed)."""
    package = spec.source.get("package")
    if package is None:
        return None
    try:
        return f"{package}=={importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return None


def shared_copy(spec: BaseModelSpec) -> Path | None:
    """The shared cache's converted folder for ``spec``, if one was made from the installed
    package (see :func:`share`)."""
    stamp = _package_stamp(spec)
    if stamp is None:
        return None
    folder = shared_dir() / _slug(spec)
    try:
        made_from = json.loads((folder / COMPLETE).read_text()).get("from")
    except (OSError, ValueError, AttributeError):
        return None
    return folder if made_from == stamp else None


def share(spec: BaseModelSpec, on_progress: Progress | None = None) -> Path:
    """Convert a packaged model into the shared cache (once; ``make setup`` does it), so that
    every fresh home of this installation reads it instead of converting it again."""
    stamp = _package_stamp(spec)
    if stamp is None:
        raise FailedPrecondition(f"{spec.name} is not a packaged model: only those are shared")
    existing = shared_copy(spec)
    if existing is not None:
        return existing
    root = shared_dir()
    target = root / _slug(spec)
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / f"{_slug(spec)}.lock", "w")  # held below
    except OSError as e:
        raise FailedPrecondition(
            f"cannot write the shared base-model cache {root} ({e.strerror}); "
            f"point {SHARED_ENV} at a folder this user may write"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shared_copy(spec) is not None:
            return target
        tmp = root / f"{_slug(spec)}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        _convert(spec, tmp, root, on_progress or (lambda _fraction: None))
        (tmp / COMPLETE).write_text(json.dumps({"name": spec.name, "from": stamp}))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


def _slug(spec: BaseModelSpec) -> str:
    # Names come from users; only a fixed-alphabet slug plus a hash reaches the file system.
    safe = re.sub(r"[^a-z0-9-]+", "-", spec.base_model_id.lower()).strip("-")[:40] or "model"
    digest = hashlib.sha256(json.dumps(spec.source, sort_keys=True).encode()).hexdigest()[:10]
    return f"{safe}-{digest}"


def _convert(spec: BaseModelSpec, out: Path, workdir: Path, on_progress: Progress) -> None:
    from . import gguf_import

    kind = spec.source["kind"]
    if kind != "hub":
        gguf = _gguf_path(spec, workdir)
        try:
            if gguf_import.convert(gguf, out, on_progress):
                return
        except ValueError as e:  # not a GGUF file, or one of a version it cannot read
            raise FailedPrecondition(f"cannot load base model {spec.name}: {e}") from None
        shutil.rmtree(out, ignore_errors=True)
    _convert_with_transformers(spec, out, workdir)


def _convert_with_transformers(spec: BaseModelSpec, out: Path, workdir: Path) -> None:
    """Any architecture transformers knows (and hub models): slower, ~25 s for SmolLM2."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind = spec.source["kind"]
    if kind == "hub":
        # A hub repository with pickle weights only is refused, never unpickled. Offline as
        # tunesmith reads it (the variable now, not when huggingface_hub was imported): the
        # local cache only, rather than ~45 s of retried connections before the same failure.
        location, weights = spec.source["repo_id"], {"use_safetensors": True}
        kwargs: dict = {"local_files_only": True} if hub.offline() else {}
    else:
        gguf = _gguf_path(spec, workdir)
        location, kwargs, weights = str(gguf.parent), {"gguf_file": gguf.name}, {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(location, dtype="float32", **kwargs, **weights)
    except OSError as e:
        hint = " (tunesmith loads safetensors weights only)" if "safetensors" in str(e) else ""
        if kwargs.get("local_files_only"):
            hint += " (HF_HUB_OFFLINE is set: only the local Hugging Face cache was looked in)"
        raise FailedPrecondition(f"cannot load base model {spec.name}: {e}{hint}") from None
    # A model loaded from GGUF keeps its quantizer and refuses save_pretrained otherwise.
    model.hf_quantizer = None  # type: ignore[assignment]  # torch: Tensor | Module only
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def source_gguf(spec: BaseModelSpec, workdir: Path) -> Path | None:
    """The GGUF file a base model comes from (None for folders and hub models): exports keep
    its metadata, tokenizer above all."""
    if spec.source["kind"] in ("folder", "hub"):
        return None
    return _gguf_path(spec, workdir)


def reference(spec: BaseModelSpec, folder: Path) -> str:
    """How a file outside tunesmith names this base: its hub id, else where it is."""
    return spec.hub_id or spec.source.get("repo_id") or spec.source.get("path") or str(folder)


def _gguf_path(spec: BaseModelSpec, workdir: Path) -> Path:
    kind = spec.source["kind"]
    if kind == "gguf_file":
        return Path(spec.source["path"])
    if kind == "packaged_gguf":
        dist = importlib.metadata.distribution(spec.source["package"])
        return Path(str(dist.locate_file(spec.source["file"])))
    if kind == "assembled_gguf":
        # The package ships the file in chunks; its assemble() joins and checks them.
        module = importlib.import_module(spec.source["module"])
        return Path(module.assemble(workdir / f"{_slug(spec)}.gguf"))
    raise FailedPrecondition(f"unknown base model source kind '{kind}'")
