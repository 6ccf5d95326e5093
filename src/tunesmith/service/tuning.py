"""Tuned models and their operations: the rules live here, once.

The HTTP routes and the embedded SDK both call these methods; neither checks anything on its
own. ``caller`` is who asks (:class:`~tunesmith.service.access.Caller`, or a bare user name),
or None when the service runs open (embedded, or a server with no keys), in which case every
model is visible; ``owner`` is only ever a model's owner. Who may do what is
:mod:`tunesmith.service.access`.
"""

from __future__ import annotations

import re
import secrets
import shutil
import string
import time
from collections.abc import Callable, Sequence

from .. import data
from ..engine import base_models, steps
from ..engine.steps import total_steps
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..records.tuning import CreateTunedModelRequest
from ..settings import Settings
from ..store import NewTuning, Store, utcnow
from ..store.permissions import PermissionStore
from ..types import (
    Hyperparameters,
    OperationRecord,
    TunedModel,
    TunedModelState,
    TuningTask,
    ValidationLosses,
)
from .access import Access, Caller, Role, as_caller, visibility
from .catalog import BaseModelCatalog
from .checks import MAX_PAGE_SIZE, is_int, is_number, sampling_problems
from .checks import page_size as page_size_of

ID_PATTERN = re.compile(r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$")
MAX_DISPLAY_NAME = 40
MAX_DESCRIPTION = 10_000
DEFAULT_EPOCHS = 5
DEFAULT_BATCH_SIZE = 4
MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 64
METHODS = ("lora", "full")
DEFAULT_PAGE_SIZE = 50
# wait_operation: the longest one call waits, and how often it looks at the operation meanwhile
# (one column of one row: on a 2-core machine the worker needs the cores more than a waiter;
# a worker in another process ends the job, so there is nothing to be told by).
MAX_WAIT_SECONDS = 10.0
WAIT_POLL_SECONDS = 0.05
# Fields of a TunedModel a user may change; everything else is output-only or immutable.
UPDATABLE = ("display_name", "description", "temperature", "top_p", "top_k")

_ALPHABET = string.ascii_lowercase + string.digits


def parse_model_name(name: str, collection: str = "tunedModels") -> str:
    """``tunedModels/ID`` (or a bare ID) to ID, refusing anything outside the id pattern."""
    if not isinstance(name, str):
        raise InvalidArgument(f"name: expected '{collection}/ID', got {type(name).__name__}")
    model_id = name.removeprefix(f"{collection}/")
    if not ID_PATTERN.match(model_id):
        raise NotFound(f"{collection}/{model_id} not found")
    return model_id


def parse_operation_name(name: str) -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "tunedModels" or parts[2] != "operations":
        raise NotFound(f"operation {name} not found")
    return parse_model_name(parts[1]), parts[3]


class TuningService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        on_enqueue: Callable[[], None] | None = None,
        catalog: BaseModelCatalog | None = None,
        access: Access | None = None,
    ):
        """``access``: the service's one authorization rule over this store (:class:`Service`
        shares one among its parts); a TuningService on its own makes its own."""
        self.settings = settings
        self.store = store
        self.on_enqueue = on_enqueue
        self.catalog = catalog or BaseModelCatalog(settings)
        self.access = access or Access(PermissionStore(store))

    # -- create -------------------------------------------------------------------------

    def create_tuned_model(
        self,
        req: CreateTunedModelRequest,
        caller: Caller | str | None = None,
        *,
        fine_tuning: dict | None = None,
        failure: str | None = None,
    ) -> OperationRecord:
        """Store the tuned model and queue its job. ``fine_tuning``: the OpenAI fields of a job
        created as an OpenAI fine-tuning job (:mod:`.fine_tuning`); ``failure``: the job fails
        at once with this reason (a check OpenAI makes after accepting the job)."""
        caller = as_caller(caller)
        examples = list(req.examples)
        data.validate_examples(examples, max_examples=self.settings.max_examples)
        held_out = None
        if req.validation_examples is not None:
            held_out = list(req.validation_examples)
            data.validate_examples(
                held_out, max_examples=self.settings.max_examples, field="validation_data"
            )
        problems: list[str] = []
        missing: list[str] = []  # the problems that are a source model that does not exist
        model_id = self._new_id(req, problems)
        hp = self._hyperparameters(req, problems)
        source = self._source(req.source_model, caller, problems, missing)
        spec = None
        if source is not None:
            spec = source if isinstance(source, base_models.BaseModelSpec) else None
            defaults = spec or source
            temperature = _pick(req.temperature, defaults.temperature)
            top_p = _pick(req.top_p, defaults.top_p)
            top_k = _pick(req.top_k, defaults.top_k)
            limit = (spec or self.catalog.stored(source.base_model)).max_temperature
            problems += sampling_problems(temperature, top_p, top_k, limit)
        if req.display_name is not None and len(req.display_name) > MAX_DISPLAY_NAME:
            problems.append(
                f"display_name: {len(req.display_name)} characters, over the limit of "
                f"{MAX_DISPLAY_NAME}"
            )
        if req.description is not None and len(req.description) > MAX_DESCRIPTION:
            problems.append(f"description: over the limit of {MAX_DESCRIPTION} characters")
        if req.method not in METHODS:
            problems.append(f"method: '{req.method}' is not one of {', '.join(METHODS)}")
        if req.seed is not None and (not is_int(req.seed) or not 0 <= req.seed < 2**31):
            problems.append(f"seed: {req.seed!r} must be an integer from 0 to 2147483647")
        if problems:
            # Nothing wrong but a base (or parent) model that does not exist: "not found", as
            # for any other missing resource (404; the CLI's exit 3).
            raise (NotFound if problems == missing else InvalidArgument)("; ".join(problems))

        epochs, batch = hp.epoch_count, hp.batch_size
        assert epochs is not None and batch is not None  # _hyperparameters set both
        now = utcnow()
        model = TunedModel(
            name=f"tunedModels/{model_id}",
            source_model=req.source_model,
            base_model=spec.name if spec else source.base_model,
            tuned_model_source=None if spec else source.name,
            display_name=req.display_name or "",
            description=req.description or "",
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            state=TunedModelState.CREATING,
            create_time=now,
            update_time=now,
            tuning_task=TuningTask(hyperparameters=hp),
        )
        op = self.store.create_tuning(
            NewTuning(
                model=model,
                operation_id=_random(12),
                examples=examples,
                method=req.method,
                total_steps=total_steps(len(examples), epochs, batch),
                owner=caller.user if caller else None,
                validation_examples=held_out,
                max_active_jobs=self.settings.max_jobs_per_user,  # checked as the job is stored
                seed=req.seed,
                fine_tuning=fine_tuning,
                failure=failure,
            )
        )
        if self.on_enqueue is not None and failure is None:
            self.on_enqueue()  # after the commit: a worker can only see committed jobs
        return op

    def _new_id(self, req: CreateTunedModelRequest, problems: list[str]) -> str:
        if req.id is not None:
            if not isinstance(req.id, str) or not ID_PATTERN.match(req.id):
                problems.append(
                    f"tuned_model_id: '{req.id}' must match [a-z]([a-z0-9-]{{0,38}}[a-z0-9])? "
                    "(lower-case letters, digits and hyphens, 1-40 characters, starting with a "
                    "letter)"
                )
            return req.id
        # As Google: the display name's words joined by hyphens, plus a random part.
        words = re.findall(r"[a-z0-9]+", (req.display_name or "").lower())
        stem = "-".join(words)[:27].strip("-")
        if not stem or not stem[0].isalpha():
            stem = ("model-" + stem).strip("-")[:27].strip("-")
        return f"{stem}-{_random(12)}"

    def _hyperparameters(
        self, req: CreateTunedModelRequest, problems: list[str]
    ) -> Hyperparameters:
        epochs = _pick(req.epoch_count, DEFAULT_EPOCHS)
        batch = _pick(req.batch_size, DEFAULT_BATCH_SIZE)
        if not is_int(epochs) or not 1 <= epochs <= MAX_EPOCHS:
            problems.append(f"epoch_count: {epochs!r} must be an integer from 1 to {MAX_EPOCHS}")
        if not is_int(batch) or not 1 <= batch <= MAX_BATCH_SIZE:
            problems.append(f"batch_size: {batch!r} must be an integer from 1 to {MAX_BATCH_SIZE}")
        lr, mult = req.learning_rate, req.learning_rate_multiplier
        if lr is not None and mult is not None:
            problems.append("learning_rate, learning_rate_multiplier: give one, not both")
        for field, value in (("learning_rate", lr), ("learning_rate_multiplier", mult)):
            if value is not None and (not is_number(value) or not 0 < value <= 10):
                problems.append(f"{field}: {value!r} must be a number above 0 and at most 10")
        if problems or req.method not in METHODS:
            return Hyperparameters(epoch_count=epochs, batch_size=batch)  # refused anyway
        # The record carries the rate the run uses (the method's default, times the multiplier
        # if one was given), so every surface shows a number; the worker uses it as it is.
        rate = steps.peak_learning_rate(req.method, lr, mult)
        return Hyperparameters(epoch_count=epochs, batch_size=batch, learning_rate=rate)

    def _source(self, source_model, caller, problems, missing):
        """The base model spec (one the caller may name: the catalog's rule), or the tuned
        model to continue from (one the caller may read)."""
        try:
            if isinstance(source_model, str) and source_model.startswith("tunedModels/"):
                parent = self.get_tuned_model(source_model, caller)
                if parent.state is not TunedModelState.ACTIVE:
                    problems.append(f"source_model: {source_model} is not ACTIVE")
                    return None
                return parent
            return self.catalog.source(source_model)
        except (NotFound, InvalidArgument, FailedPrecondition) as e:
            problems.append(f"source_model: {e.message}")
            if isinstance(e, NotFound):
                missing.append(problems[-1])
            return None

    # -- read, update, delete -----------------------------------------------------------

    def get_tuned_model(
        self, name: str, caller: Caller | str | None = None, need: Role = Role.READER
    ) -> TunedModel:
        model_id = parse_model_name(name)
        self.access.require(caller, model_id, need)
        return self.store.get_tuned_model(model_id)

    def get_validation_losses(
        self, name: str, caller: Caller | str | None = None
    ) -> ValidationLosses:
        """tunesmith's own: the loss over the model's validation examples at each epoch's end
        (no losses and ``example_count`` 0 when it was tuned without validation data)."""
        model_id = parse_model_name(name)
        self.access.require(caller, model_id, Role.READER)
        return self.store.validation_losses(model_id)

    def list_tuned_models(
        self,
        page_size: int | None = None,
        page_token: str | None = None,
        filter: str | None = None,
        caller: Caller | str | None = None,
    ) -> tuple[list[TunedModel], str | None]:
        size = page_size_of(
            page_size, DEFAULT_PAGE_SIZE, self.settings.max_page_size or MAX_PAGE_SIZE
        )
        words, special = [], None
        for word in (filter or "").split():
            if word in ("owner:me", "readers:everyone"):
                if special not in (None, word):
                    raise InvalidArgument("filter: give owner:me or readers:everyone, not both")
                special = word
                continue
            if ":" in word:
                raise InvalidArgument(
                    f"filter: '{word}' is not supported "
                    "(use words to search, owner:me or readers:everyone)"
                )
            words.append(word)
        seen = visibility(as_caller(caller), special)
        return self.store.list_tuned_models(seen, size, page_token, " ".join(words))

    def update_tuned_model(
        self,
        name: str,
        changes: dict,
        update_mask: Sequence[str] | None = None,
        caller: Caller | str | None = None,
    ) -> TunedModel:
        """Apply ``changes`` (snake_case keys); with a mask, only the masked fields."""
        model_id = parse_model_name(name)
        self.access.require(caller, model_id, Role.WRITER)
        current = self.store.get_tuned_model(model_id)
        changes = {_snake(k): v for k, v in changes.items()}
        if update_mask:
            fields = [_snake(f.strip()) for f in update_mask if f.strip()]
            bad = [f for f in fields if f not in UPDATABLE]
            if bad:
                raise InvalidArgument(
                    f"update_mask: cannot update {', '.join(bad)} "
                    f"(updatable: {', '.join(UPDATABLE)})"
                )
            values = {f: changes.get(f) for f in fields}
        else:
            values = {f: changes[f] for f in UPDATABLE if changes.get(f) is not None}
        problems: list[str] = []
        if "display_name" in values:
            display_name = values["display_name"] = values["display_name"] or ""
            if len(display_name) > MAX_DISPLAY_NAME:
                problems.append(f"display_name: over the limit of {MAX_DISPLAY_NAME} characters")
        if "description" in values:
            values["description"] = values["description"] or ""
        merged = {k: values.get(k, getattr(current, k)) for k in ("temperature", "top_p", "top_k")}
        limit = self.catalog.stored(current.base_model).max_temperature
        problems += sampling_problems(
            merged["temperature"], merged["top_p"], merged["top_k"], limit
        )
        if problems:
            raise InvalidArgument("; ".join(problems))
        if not values:
            return current
        return self.store.update_tuned_model(model_id, values)

    def delete_tuned_model(self, name: str, caller: Caller | str | None = None) -> None:
        model_id = parse_model_name(name)
        self.access.require(caller, model_id, Role.OWNER)
        path = self.store.delete_tuned_model(model_id)
        if path:
            shutil.rmtree(self.settings.stored_path(path), ignore_errors=True)
        shutil.rmtree(self.settings.exports_dir / model_id, ignore_errors=True)
        shutil.rmtree(self.settings.served_checkpoint_dir(model_id), ignore_errors=True)

    # -- operations ---------------------------------------------------------------------

    def get_operation(self, name: str, caller: Caller | str | None = None) -> OperationRecord:
        model_id, op_id = parse_operation_name(name)
        self.access.require(caller, model_id, Role.READER)
        return self.store.get_operation(model_id, op_id)

    def wait_operation(
        self, name: str, timeout: float, caller: Caller | str | None = None
    ) -> OperationRecord:
        """The operation once it is done, or as it is after ``timeout`` seconds (at most
        :data:`MAX_WAIT_SECONDS`), whichever comes first: Google's ``WaitOperation``. A caller
        waiting for a job learns that it ended within :data:`WAIT_POLL_SECONDS` instead of at
        its next poll."""
        if not is_number(timeout) or timeout < 0:
            raise InvalidArgument(f"timeout: expected a duration of 0 s or more, got {timeout!r}")
        deadline = time.monotonic() + min(timeout, MAX_WAIT_SECONDS)
        op = self.get_operation(name, caller)
        if op.done or timeout == 0:
            return op
        model_id, op_id = parse_operation_name(name)
        while time.monotonic() < deadline:
            time.sleep(min(WAIT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            if self.store.operation_done(model_id, op_id):
                break
        return self.store.get_operation(model_id, op_id)  # ended, or its progress meanwhile

    def list_operations(
        self, name: str | None = None, caller: Caller | str | None = None
    ) -> list[OperationRecord]:
        """The operations of one tuned model, or every operation when ``name`` is None."""
        if name is None:
            return self.store.find_operations(visibility(as_caller(caller)))
        model_id = parse_model_name(name)
        self.access.require(caller, model_id, Role.READER)
        return self.store.list_operations(model_id)

    def pause_operation(self, name: str, caller: Caller | str | None = None) -> OperationRecord:
        """tunesmith's own (OpenAI's pause): a queued job waits, a running one stops at its
        next step with a checkpoint; it keeps its place in the queue until resumed."""
        model_id, op_id = parse_operation_name(name)
        self.access.require(caller, model_id, Role.WRITER)
        self.store.jobs.request_pause(model_id, op_id)
        return self.store.get_operation(model_id, op_id)

    def resume_operation(self, name: str, caller: Caller | str | None = None) -> OperationRecord:
        """A paused job goes back to the queue in its place and carries on from its
        checkpoint."""
        model_id, op_id = parse_operation_name(name)
        self.access.require(caller, model_id, Role.WRITER)
        self.store.jobs.request_resume(model_id, op_id)
        if self.on_enqueue is not None:
            self.on_enqueue()
        return self.store.get_operation(model_id, op_id)

    def cancel_operation(self, name: str, caller: Caller | str | None = None) -> OperationRecord:
        model_id, op_id = parse_operation_name(name)
        self.access.require(caller, model_id, Role.WRITER)
        self.store.get_operation(model_id, op_id)  # NotFound for another model's operation
        self.store.request_cancel(model_id, op_id)
        return self.store.get_operation(model_id, op_id)


def _pick(value, default):
    return default if value is None else value


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))
