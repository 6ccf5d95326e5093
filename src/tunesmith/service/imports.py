"""Importing a peft LoRA adapter trained elsewhere as a tuned model.

The adapter must fit its base: plain LoRA (what tunesmith serves), and every layer it changes
present in the base with the shapes the adapter's matrices expect. The check builds the base
from its config on torch's ``meta`` device (shapes only, no weights, no memory), so an
adapter trained on another model is refused in a moment, naming the first layer that does
not fit. The adapter's files are copied under ``TUNESMITH_HOME/adapters``; from then on the
model is served, shared, tuned from and exported like any other (it has no operation).
"""

from __future__ import annotations

import secrets
import shutil
import string
from pathlib import Path

from ..engine import base_models
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..settings import Settings
from ..store import Store, utcnow
from ..types import TunedModel, TunedModelState, TuningTask
from .access import Caller, as_caller
from .catalog import BaseModelCatalog
from .tuning import ID_PATTERN, MAX_DISPLAY_NAME

_FILES = ("adapter_config.json", "adapter_model.safetensors")
_OPTIONAL = ("tunesmith_prompt.json",)


class ImportService:
    def __init__(self, settings: Settings, store: Store, catalog: BaseModelCatalog | None = None):
        self.settings = settings
        self.store = store
        self.catalog = catalog or BaseModelCatalog(settings)

    def import_adapter(
        self,
        folder: str | Path,
        base_model: str,
        id: str,
        display_name: str | None = None,
        caller: Caller | str | None = None,
    ) -> TunedModel:
        """Register the peft LoRA adapter in ``folder`` over ``base_model`` as tunedModels/ID."""
        problems = []
        if not isinstance(id, str) or not ID_PATTERN.match(id):
            problems.append(f"tuned_model_id: {id!r} must match [a-z]([a-z0-9-]{{0,38}}[a-z0-9])?")
        if display_name is not None and len(display_name) > MAX_DISPLAY_NAME:
            problems.append(f"display_name: over the limit of {MAX_DISPLAY_NAME} characters")
        folder = Path(folder).expanduser()
        missing = [f for f in _FILES if not (folder / f).is_file()]
        if missing:
            problems.append(
                f"adapter: {folder} is not a peft adapter folder (no {', '.join(missing)})"
            )
        try:
            spec = self.catalog.source(base_model)  # a base model this caller may name
        except (InvalidArgument, NotFound, FailedPrecondition) as e:
            problems.append(f"base_model: {e.message}")
            spec = None
        if problems or spec is None:
            raise InvalidArgument("; ".join(problems))
        base_dir = base_models.materialize(spec, self.settings.base_models_dir)
        _check_fits(folder, base_dir, spec.name)

        target = self.settings.adapters_dir / f"imported-{_random(12)}"
        target.mkdir(parents=True)
        for name in _FILES + _OPTIONAL:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, target / name)
        now = utcnow()
        model = TunedModel(
            name=f"tunedModels/{id}",
            source_model=spec.name,
            base_model=spec.name,
            display_name=display_name or "",
            description=f"Imported from a peft LoRA adapter ({folder.name})",
            temperature=spec.temperature,
            top_p=spec.top_p,
            top_k=spec.top_k,
            state=TunedModelState.ACTIVE,
            create_time=now,
            update_time=now,
            tuning_task=TuningTask(),
        )
        caller = as_caller(caller)
        relative = self.settings.path_to_store(target)
        try:
            return self.store.import_tuned_model(model, caller.user if caller else None, relative)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise


def _check_fits(folder: Path, base_dir: Path, base_name: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..engine.export.weights import read_lora

    try:
        lora = read_lora(folder)
    except FailedPrecondition as e:
        raise InvalidArgument(f"adapter: {e.message}") from None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_dir))
    for module, (a, b) in sorted(lora.layers.items()):
        try:
            layer = model.get_submodule(module)
        except AttributeError:
            raise InvalidArgument(
                f"adapter: {base_name} has no layer {module}; the adapter was trained on "
                "another base model"
            ) from None
        weight = getattr(layer, "weight", None)
        if not isinstance(layer, torch.nn.Linear) or weight is None:
            raise InvalidArgument(f"adapter: {module} of {base_name} is not a linear layer")
        if tuple(weight.shape) != (b.shape[0], a.shape[1]):
            raise InvalidArgument(
                f"adapter: {module} is {list(weight.shape)} (out, in) in {base_name}, but the "
                f"adapter's matrices are for {[b.shape[0], a.shape[1]]}; it was trained on "
                "another base model"
            )


def _random(n: int) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))
