"""The public records: what the SDK returns and the service works with.

They mirror Google's messages (``TunedModel``, ``TuningTask``, ``TuningSnapshot``, ``Model``,
the create-tuned-model ``Operation``) with snake_case fields. Their proto-JSON form lives in
:mod:`tunesmith.wire`; storage rows never leave :mod:`tunesmith.store`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, overload


@overload
def as_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A stored or received time as an aware one: a naive datetime (SQLite hands them back,
    some answers leave the zone out) is UTC, as everything tunesmith stores is."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


class TunedModelState(enum.IntEnum):
    STATE_UNSPECIFIED = 0
    CREATING = 1
    ACTIVE = 2
    FAILED = 3


@dataclasses.dataclass(frozen=True)
class TuningExample:
    text_input: str
    output: str


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A list of examples, like Google's ``Dataset{examples: TuningExamples}``."""

    examples: tuple[TuningExample, ...]

    def __init__(self, examples):
        object.__setattr__(self, "examples", tuple(examples))

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[TuningExample]:
        return iter(self.examples)


@dataclasses.dataclass
class Hyperparameters:
    epoch_count: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    learning_rate_multiplier: float | None = None


@dataclasses.dataclass
class TuningSnapshot:
    step: int
    epoch: int
    mean_loss: float
    compute_time: dt.datetime | None  # None only where an answer left it out


@dataclasses.dataclass
class ValidationLosses:
    """tunesmith's own (not in Google's API): a tuned model's validation losses so far.

    Each is a snapshot whose ``mean_loss`` is over the held-out examples, taken after a step
    that ended an epoch (``epoch``: epochs completed, as in the training snapshots).
    ``example_count`` 0: the model was tuned without validation data.
    """

    example_count: int = 0
    losses: list[TuningSnapshot] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class TuningTask:
    start_time: dt.datetime | None = None
    complete_time: dt.datetime | None = None
    snapshots: list[TuningSnapshot] = dataclasses.field(default_factory=list)
    hyperparameters: Hyperparameters = dataclasses.field(default_factory=Hyperparameters)


@dataclasses.dataclass
class TunedModel:
    name: str = ""
    source_model: str = ""
    base_model: str = ""
    tuned_model_source: str | None = None  # tunedModels/ID when tuned from a tuned model
    display_name: str = ""
    description: str = ""
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    state: TunedModelState = TunedModelState.STATE_UNSPECIFIED
    create_time: dt.datetime | None = None
    update_time: dt.datetime | None = None
    tuning_task: TuningTask = dataclasses.field(default_factory=TuningTask)
    # Why the model is FAILED; not part of Google's message, kept out of its JSON form.
    error: str | None = None
    # tunesmith's own, kept out of Google's JSON form too: "lora" (an adapter over the base
    # model) or "full" (the whole model's weights).
    method: str = "lora"

    @property
    def id(self) -> str:
        return self.name.removeprefix("tunedModels/")

    @property
    def permissions(self) -> Any:
        """Who may use this model: ``model.permissions.create(role="reader", ...)``,
        ``.list()``, ``.get(id)``, ``.transfer_ownership(user)``, over the default client
        (:class:`tunesmith.sdk.permissions.Permissions` takes another)."""
        if _permissions_view is None:  # only without the SDK, which `import tunesmith` loads
            raise RuntimeError("TunedModel.permissions needs tunesmith's SDK: import tunesmith")
        return _permissions_view(self)


# The SDK sits above the records, so a record never imports it: the SDK names the view of a
# model's permissions (``tunesmith.sdk.permissions.Permissions``) when it loads.
_permissions_view: Callable[[TunedModel], Any] | None = None


def provide_permissions_view(view: Callable[[TunedModel], Any]) -> None:
    global _permissions_view
    _permissions_view = view


@dataclasses.dataclass
class Model:
    name: str
    base_model_id: str
    version: str
    display_name: str
    description: str
    input_token_limit: int
    output_token_limit: int
    supported_generation_methods: list[str]
    temperature: float | None = None
    max_temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None


@dataclasses.dataclass
class OperationError:
    code: int  # gRPC code: 1 CANCELLED, 3 INVALID_ARGUMENT, 13 INTERNAL, ...
    message: str


class Phase(enum.StrEnum):
    """What a tuning run is doing (tunesmith's own): a run that has not reached its first
    step is waiting, preparing or loading, and says so."""

    QUEUED = "QUEUED"
    PREPARING_BASE_MODEL = "PREPARING_BASE_MODEL"
    LOADING_BASE_MODEL = "LOADING_BASE_MODEL"
    TUNING = "TUNING"
    PAUSED = "PAUSED"


# What every surface (wait_bar, the CLI, the console) shows for a phase.
PHASE_DESCRIPTIONS: dict[str, str] = {
    Phase.QUEUED: "waiting for a worker",
    Phase.PREPARING_BASE_MODEL: "preparing base model (first run, once)",
    Phase.LOADING_BASE_MODEL: "loading base model",
    Phase.TUNING: "tuning",
    Phase.PAUSED: "paused (resume it to carry on from its checkpoint)",
}


@dataclasses.dataclass
class RunPhase:
    """tunesmith's own (not in Google's API): the phase of an unfinished tuning run.

    ``progress`` is the share of the phase done (0 to 1) where it is measured (preparing the
    base model), else None; steps measure the tuning itself.
    """

    name: str
    progress: float | None = None

    @property
    def description(self) -> str:
        known = PHASE_DESCRIPTIONS.get(self.name)
        return known or self.name.lower().replace("_", " ")


@dataclasses.dataclass
class CreateTunedModelMetadata:
    tuned_model: str
    total_steps: int
    completed_steps: int = 0
    completed_percent: float = 0.0
    snapshots: list[TuningSnapshot] = dataclasses.field(default_factory=list)
    # tunesmith's own: None once the operation is done, and from servers that do not say.
    phase: RunPhase | None = None


@dataclasses.dataclass
class OperationRecord:
    """A create-tuned-model long-running operation as the service reports it."""

    name: str  # tunedModels/ID/operations/OP
    metadata: CreateTunedModelMetadata
    done: bool = False
    error: OperationError | None = None
    response: TunedModel | None = None


@dataclasses.dataclass
class GenerationConfig:
    """Sampling parameters; ``None`` means "the model's default"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    candidate_count: int | None = None
    max_output_tokens: int | None = None
    stop_sequences: list[str] = dataclasses.field(default_factory=list)
    seed: int | None = None
    """Sample reproducibly: the same request with the same seed on the same weights gives
    the same answer (None: not reproducible)."""


@dataclasses.dataclass
class Candidate:
    output: str
    finish_reason: str = "STOP"  # STOP | MAX_TOKENS
    token_count: int = 0


@dataclasses.dataclass
class Generation:
    candidates: list[Candidate]
    prompt_token_count: int = 0

    @property
    def candidates_token_count(self) -> int:
        return sum(c.token_count for c in self.candidates)


@dataclasses.dataclass(frozen=True)
class TunedModelExport:
    """tunesmith's own: a tuned model written for another runtime (see
    ``ts.export_tuned_model``): which files, in which folder."""

    tuned_model: str
    """``tunedModels/ID``."""
    format: str
    """``adapter``, ``merged``, ``gguf`` or ``gguf-lora``."""
    quantization: str | None
    """F16, BF16, Q8_0 or F32 for the GGUF formats; None for the others."""
    folder: Path
    files: list[Path]

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    @property
    def main_file(self) -> Path:
        """The file a runtime is pointed at: the GGUF (the adapter's for gguf-lora), the
        adapter's weights, or the merged weights' first file."""
        if self.format == "gguf":
            wanted = [f for f in self.files if f.suffix == ".gguf"]
        elif self.format == "gguf-lora":
            wanted = [f for f in self.files if f.name.endswith("-lora.gguf")]
        else:
            wanted = [f for f in self.files if f.suffix == ".safetensors"]
        return sorted(wanted or self.files)[0]


__all__ = [
    "Candidate",
    "CreateTunedModelMetadata",
    "Dataset",
    "Generation",
    "GenerationConfig",
    "Hyperparameters",
    "Model",
    "OperationError",
    "OperationRecord",
    "Phase",
    "RunPhase",
    "TunedModel",
    "TunedModelExport",
    "TunedModelState",
    "TuningExample",
    "TuningSnapshot",
    "TuningTask",
    "ValidationLosses",
]
