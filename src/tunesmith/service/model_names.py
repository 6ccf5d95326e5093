"""One resolver for the names callers give models, in either dialect.

* ``models/NAME`` — a base model (Google's name); a bare ``NAME`` is the same (OpenAI's
  model ids have no collection: ``smollm2-135m-instruct``).
* ``tunedModels/ID`` — a tuned model (Google's name).
* ``ft:BASE:OWNER:SUFFIX:JOBID`` — the same tuned model under OpenAI's name for it
  (:func:`fine_tuned_model_name`); only ``JOBID`` (``ftjob-ID``, :func:`job_id`) identifies
  it, the other parts are for people.
* ``MODEL:ckpt-step-N`` — the checkpoint of tuned model ``MODEL`` (any tuned model name
  above) after step N, kept in :meth:`Settings.served_checkpoint_dir`.

Parsing decides from the string alone; whether the model exists and the caller may use it
is the generation and tuning services' rule, as for any name.
"""

from __future__ import annotations

import dataclasses
import re

from ..errors import InvalidArgument, NotFound
from ..types import TunedModelState
from .access import Caller
from .tuning import ID_PATTERN, parse_model_name

FT_PREFIX = "ft:"
JOB_PREFIX = "ftjob-"
_CHECKPOINT = re.compile(r"^(?P<model>.+):ckpt-step-(?P<step>[0-9]{1,9})$")
_PART = re.compile(r"[^A-Za-z0-9._-]+")


@dataclasses.dataclass(frozen=True)
class ModelName:
    """What a name points at: a base model (``base``, as ``models/NAME``) or a tuned model
    (``tuned_model_id``), possibly at one of its checkpoints (``checkpoint_step``)."""

    base: str | None = None
    tuned_model_id: str | None = None
    checkpoint_step: int | None = None

    @property
    def tuned_model(self) -> str | None:
        return None if self.tuned_model_id is None else f"tunedModels/{self.tuned_model_id}"


def parse(name: str) -> ModelName:
    """The model ``name`` points at; NotFound for a string that can name none."""
    if not isinstance(name, str) or not name.strip():
        raise NotFound("model: a model name is required")
    ckpt = _CHECKPOINT.match(name)
    if ckpt:
        tuned = parse(ckpt["model"])
        if tuned.tuned_model_id is None or tuned.checkpoint_step is not None:
            raise NotFound(f"model {name!r} not found: checkpoints belong to tuned models")
        return dataclasses.replace(tuned, checkpoint_step=int(ckpt["step"]))
    if name.startswith("tunedModels/"):
        return ModelName(tuned_model_id=parse_model_name(name))
    if name.startswith(FT_PREFIX):
        return ModelName(tuned_model_id=tuned_model_of_job(name.rsplit(":", 1)[-1], name))
    if name.startswith("models/"):
        return ModelName(base=name)
    return ModelName(base=f"models/{name}")


def job_id(tuned_model_id: str) -> str:
    """The OpenAI fine-tuning job that made a tuned model (one job per tuned model)."""
    return JOB_PREFIX + tuned_model_id


def tuned_model_of_job(job: str, name: str | None = None) -> str:
    """The tuned model id a job id (``ftjob-ID``) stands for; NotFound for any other string."""
    if not isinstance(job, str) or not job.startswith(JOB_PREFIX):
        raise NotFound(f"{'model ' + repr(name) if name else 'job ' + repr(job)} not found")
    return _tuned_id(job.removeprefix(JOB_PREFIX), name or job)


def fine_tuned_model_name(
    base: str, owner: str | None, suffix: str | None, tuned_model_id: str
) -> str:
    """OpenAI's name for a tuned model: ``ft:BASE:OWNER:SUFFIX:ftjob-ID``. BASE is the base
    model's short name, OWNER the owner's user name (``tunesmith`` when the server runs
    without keys); characters outside ``[A-Za-z0-9._-]`` become ``-`` so the name splits on
    ``:`` unambiguously."""
    parts = [base.removeprefix("models/"), owner or "tunesmith", suffix or ""]
    clean = [_PART.sub("-", p) for p in parts]
    return ":".join(["ft", *clean, job_id(tuned_model_id)])


def checkpoint_name(model: str, step: int) -> str:
    """The name of ``model``'s checkpoint after ``step`` (``model`` is any tuned model name)."""
    return f"{model}:ckpt-step-{step}"


def _tuned_id(model_id: str, name: str) -> str:
    if not ID_PATTERN.match(model_id):
        raise NotFound(f"model {name!r} not found")
    return model_id


@dataclasses.dataclass(frozen=True)
class NamedModel:
    """A model a caller may name, under OpenAI's id for it: a base model's short name, a
    tuned model's ``ft:`` name, a checkpoint's ``...:ckpt-step-N``."""

    id: str
    created: int  # Unix seconds (0 for base models)
    owned_by: str
    tuned_model: str | None = None  # tunedModels/ID, for tuned models and checkpoints


class ModelDirectory:
    """Every model a caller may use, in one list, and deleting the tuned ones: what OpenAI's
    ``/models`` routes show. The rules (who sees what, who may delete) are the tuning and
    generation services'."""

    def __init__(self, settings, store, tuning, generation):
        self.settings, self.store, self.tuning, self.generation = (
            settings,
            store,
            tuning,
            generation,
        )

    def list(self, caller: Caller | str | None = None) -> list[NamedModel]:
        found = [
            NamedModel(m.name.removeprefix("models/"), 0, "tunesmith")
            for m in self.generation.list_models()
        ]
        token = None
        while True:
            page, token = self.tuning.list_tuned_models(None, token, None, caller)
            found += [self.named(t) for t in page if t.state is TunedModelState.ACTIVE]
            if not token:
                return found

    def get(self, name: str, caller: Caller | str | None = None) -> NamedModel:
        ref = parse(name)
        if ref.tuned_model_id is None:
            model = self.generation.get_model(ref.base)
            return NamedModel(model.name.removeprefix("models/"), 0, "tunesmith")
        tuned = self.tuning.get_tuned_model(ref.tuned_model, caller)
        named = self.named(tuned)
        if ref.checkpoint_step is None:
            return named
        folder = self.settings.served_checkpoint_dir(tuned.id, ref.checkpoint_step)
        if not folder.is_dir():
            raise NotFound(f"model {name!r} not found: no checkpoint kept at that step")
        created = int(folder.stat().st_mtime)
        return dataclasses.replace(
            named, id=checkpoint_name(named.id, ref.checkpoint_step), created=created
        )

    def delete(self, name: str, caller: Caller | str | None = None) -> NamedModel:
        """Delete a tuned model (its owner only); base models and checkpoints stay."""
        ref = parse(name)
        if ref.tuned_model_id is None:
            self.generation.get_model(ref.base)  # NotFound for what is not offered
            raise InvalidArgument(f"model: {name} is a base model; only tuned models are deleted")
        if ref.checkpoint_step is not None:
            raise InvalidArgument(
                f"model: {name} is a checkpoint; it goes when its tuned model is deleted"
            )
        named = self.get(name, caller)
        self.tuning.delete_tuned_model(ref.tuned_model, caller)
        return named

    def named(self, tuned) -> NamedModel:
        """A tuned model (its record) under OpenAI's name for it."""
        owner = self.store.tuned_model_owner(tuned.id)
        base = self.tuning.catalog.stored(tuned.base_model).name if tuned.base_model else "model"
        created = int(tuned.create_time.timestamp()) if tuned.create_time else 0
        name = fine_tuned_model_name(base, owner, tuned.display_name, tuned.id)
        return NamedModel(name, created, owner or "tunesmith", tuned.name)
