"""Exports of tuned models: who may export, which models, which formats, and where.

A READER of a model may export it (anyone who may generate with a model may take its
weights: the same rule as ``get``). Only an ACTIVE model has weights to export. The formats
and quantizations, and which architectures the GGUF writer knows, are the engine's
(:mod:`tunesmith.engine.export`); its :func:`~tunesmith.engine.export.check` runs before any
heavy work, so a bad request fails in a moment with the field it got wrong.

:meth:`ExportService.export_tuned_model` writes into the caller's folder (the SDK, the CLI).
:meth:`ExportService.prepared_export` writes under ``TUNESMITH_HOME/exports`` once and reuses
it while the model's weights are unchanged (the HTTP download streams it).
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from ..engine import base_models
from ..engine import export as engine
from ..errors import FailedPrecondition, InvalidArgument
from ..settings import Settings
from ..store import Store
from ..types import TunedModel, TunedModelExport, TunedModelState
from .access import Access, Caller, Role
from .catalog import BaseModelCatalog
from .tuning import parse_model_name

FORMATS = engine.FORMATS
QUANTIZATIONS = engine.QUANTIZATIONS
Progress = Callable[[str, int, int], None]


class ExportService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        access: Access,
        catalog: BaseModelCatalog | None = None,
    ):
        self.settings = settings
        self.store = store
        self.access = access
        self.catalog = catalog or BaseModelCatalog(settings)

    def export_tuned_model(
        self,
        name: str,
        format: str,
        path: str | Path,
        quantization: str | None = None,
        progress: Progress | None = None,
        caller: Caller | str | None = None,
    ) -> TunedModelExport:
        """Write tunedModels/ID as ``format`` into the folder ``path`` (made if missing)."""
        tuned, source, quantization = self._source(name, format, quantization, caller)
        if not isinstance(path, (str, Path)) or not str(path):
            raise InvalidArgument("path: a folder to write the export into is required")
        return engine.export(source, format, Path(path).expanduser(), quantization, progress)

    def prepared_export(
        self,
        name: str,
        format: str,
        quantization: str | None = None,
        caller: Caller | str | None = None,
    ) -> TunedModelExport:
        """The export under ``TUNESMITH_HOME/exports``, made once per version of the weights
        (concurrent requests for the same one wait for the first to finish it)."""
        tuned, source, quantization = self._source(name, format, quantization, caller)
        root = self.settings.exports_dir / tuned.id
        slug = format + (f"-{quantization.lower()}" if quantization else "")
        folder, stamp = root / slug, _stamp(source.tuned_dir)
        root.mkdir(parents=True, exist_ok=True)
        with open(root / f"{slug}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = folder / ".complete"
            if done.is_file() and json.loads(done.read_text()).get("stamp") == stamp:
                files = [folder / f for f in json.loads(done.read_text())["files"]]
            else:
                shutil.rmtree(folder, ignore_errors=True)
                tmp = root / f"{slug}.partial"
                shutil.rmtree(tmp, ignore_errors=True)
                result = engine.export(source, format, tmp, quantization)
                names = [str(f.relative_to(tmp)) for f in result.files]
                (tmp / ".complete").write_text(json.dumps({"stamp": stamp, "files": names}))
                tmp.rename(folder)
                files = [folder / f for f in names]
        return TunedModelExport(tuned.name, format, quantization, folder, files)

    def forget(self, model_id: str) -> None:
        """Drop a model's prepared exports (its weights are gone or changed)."""
        shutil.rmtree(self.settings.exports_dir / model_id, ignore_errors=True)

    # -- the rules ------------------------------------------------------------------------

    def _source(self, name, format, quantization, caller):
        model_id = parse_model_name(name)
        self.access.require(caller, model_id, Role.READER)
        if format not in FORMATS:
            raise InvalidArgument(
                f"format: {format!r} is not one of {', '.join(FORMATS)}"
                if format
                else f"format: required, one of {', '.join(FORMATS)}"
            )
        if quantization is not None and not isinstance(quantization, str):
            raise InvalidArgument(f"quantization: {quantization!r} is not a name such as F16")
        tuned = self.store.get_tuned_model(model_id)
        if tuned.state is not TunedModelState.ACTIVE:
            raise FailedPrecondition(
                f"tunedModels/{model_id} is {tuned.state.name}, not ACTIVE: only a tuned "
                "model that finished tuning can be exported"
            )
        source = self._export_source(tuned)
        quantization = engine.check(source, format, quantization and quantization.upper())
        return tuned, source, quantization

    def _export_source(self, tuned: TunedModel) -> engine.ExportSource:
        stored = self.store.weights(tuned.id)
        artifact = self.settings.stored_path(stored.path) if stored and stored.path else None
        if artifact is None or not artifact.is_dir():
            raise FailedPrecondition(f"{tuned.name}: its weights are missing from {artifact}")
        spec = self.catalog.stored(tuned.base_model)
        workdir = self.settings.base_models_dir
        base_dir = base_models.materialize(spec, workdir)
        base_gguf = base_models.source_gguf(spec, workdir)
        parent = None
        if stored is not None and stored.foundation:  # an adapter over a fully tuned model
            parent = self.settings.stored_path(stored.foundation)
            base_dir, base_gguf = parent, None
        return engine.ExportSource(
            tuned_dir=artifact,
            method=tuned.method,
            base_dir=base_dir,
            name=tuned.id,
            title=tuned.display_name,
            base_name=spec.name,
            base_reference=str(parent) if parent else base_models.reference(spec, base_dir),
            base_gguf=base_gguf,
            prompt_template=spec.prompt_template,
            sampling={"temperature": tuned.temperature, "top_p": tuned.top_p, "top_k": tuned.top_k},
        )


def _stamp(folder: Path) -> str:
    """Changes when the weights change (a re-tuned model gets a new folder or new files)."""
    files = sorted(p for p in folder.glob("*") if p.is_file())
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
