"""Base models (``models/*``) and generation with base or tuned models."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .. import data
from ..engine import base_models
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..records.conversations import Conversation
from ..serving import Sampling, Stream
from ..settings import Settings
from ..store import Store
from ..store.permissions import PermissionStore
from ..types import Generation, GenerationConfig, Model, TunedModelState
from . import model_names
from .access import Access, Caller, Role
from .catalog import BaseModelCatalog
from .checks import is_int, is_number, sampling_problems

if TYPE_CHECKING:
    from ..serving import ModelServer

GENERATION_METHODS = [
    "createTunedModel",
    "generateText",
    "generateContent",
    "streamGenerateContent",
    "countTextTokens",
    "countTokens",
]
DEFAULT_MAX_OUTPUT_TOKENS = 256
MAX_CANDIDATES = 8
MAX_STOP_SEQUENCES = 5


def model_record(spec: base_models.BaseModelSpec) -> Model:
    return Model(
        name=spec.name,
        base_model_id=spec.base_model_id,
        version=spec.version,
        display_name=spec.display_name,
        description=spec.description,
        input_token_limit=spec.input_token_limit,
        output_token_limit=spec.output_token_limit,
        supported_generation_methods=list(GENERATION_METHODS),
        temperature=spec.temperature,
        max_temperature=spec.max_temperature,
        top_p=spec.top_p,
        top_k=spec.top_k,
    )


class GenerationService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        server: ModelServer | None = None,
        catalog: BaseModelCatalog | None = None,
        access: Access | None = None,
    ):
        self.settings = settings
        self.store = store
        self.catalog = catalog or BaseModelCatalog(settings)
        self._server = server
        self._server_lock = threading.Lock()
        self.access = access or Access(PermissionStore(store))  # a READER may generate

    @property
    def server(self) -> ModelServer:
        """The process's model server, made on the first generation (it loads torch)."""
        with self._server_lock:
            if self._server is None:
                from ..serving import ModelServer

                self._server = ModelServer.from_settings(self.settings)
            return self._server

    def list_models(self) -> list[Model]:
        """The base models callers may name (:meth:`BaseModelCatalog.list`)."""
        return [model_record(spec) for spec in self.catalog.list()]

    def get_model(self, name: str) -> Model:
        return model_record(self.catalog.named(name, download=False))

    def generate(
        self,
        model: str,
        prompt: str | Conversation,
        config: GenerationConfig | None = None,
        caller: Caller | str | None = None,
    ) -> Generation:
        """The whole answer (blocking until it is generated)."""
        return self.generate_stream(model, prompt, config, caller).result()

    def generate_stream(
        self,
        model: str,
        prompt: str | Conversation,
        config: GenerationConfig | None = None,
        caller: Caller | str | None = None,
    ) -> Stream:
        """Check the request and queue it; text arrives on the stream as tokens are chosen.

        ``prompt`` is a text (one user turn) or a conversation ending on a user turn; either
        is rendered for the model by the rule training used (:mod:`tunesmith.engine.prompting`).
        Raises before queueing: InvalidArgument / NotFound / FailedPrecondition for the
        request, ResourceExhausted when the generation queue is full.
        """
        conv = _conversation(prompt)
        target = self._target(model, caller)
        sampling = self._sampling(config or GenerationConfig(), target)
        chars = len(conv.system_instruction) + sum(len(t.text) for t in conv.turns)
        if chars > target.spec.input_token_limit * 8:
            raise InvalidArgument(f"prompt: {chars} characters is over the model's input limit")
        return self.server.submit(
            target.base_dir, target.spec.prompt_template, conv, sampling, target.adapter_dir
        )

    def count_tokens(
        self, model: str, prompt: str | Conversation, caller: Caller | str | None = None
    ) -> int:
        conv = _conversation(prompt)
        target = self._target(model, caller)
        return self.server.count_tokens(
            target.base_dir, target.spec.prompt_template, conv, target.adapter_dir
        )

    def _target(self, model: str, caller) -> _Target:
        """What ``model`` (any name :mod:`.model_names` resolves) is served from, once the
        caller may read it: NotFound for what it may not see, as for what does not exist."""
        ref = model_names.parse(model)
        if ref.tuned_model_id is None:
            spec = self.catalog.named(ref.base)
            return _Target(spec, base_models.materialize(spec, self.settings.base_models_dir))
        model_id = ref.tuned_model_id
        self.access.require(caller, model_id, Role.READER)
        tuned = self.store.get_tuned_model(model_id)
        spec = self.catalog.stored(tuned.base_model)
        stored = self.store.weights(tuned.id)
        if ref.checkpoint_step is not None:  # usable as soon as it is kept, even mid-run
            artifact = self.settings.served_checkpoint_dir(model_id, ref.checkpoint_step)
            if not artifact.is_dir():
                raise NotFound(f"model {model!r} not found: no checkpoint kept at that step")
        else:
            if tuned.state is not TunedModelState.ACTIVE:
                raise FailedPrecondition(
                    f"{model} is {tuned.state.name}, not ACTIVE: it cannot generate yet"
                    + (f" ({tuned.error})" if tuned.error else "")
                )
            found = self.settings.stored_path(stored.path) if stored and stored.path else None
            if found is None or not found.is_dir():
                raise FailedPrecondition(f"{model}: its weights are missing from {found}")
            artifact = found
        if tuned.method == "full":
            return _Target(spec, artifact, None, tuned)  # its own weights
        if stored is not None and stored.foundation:  # tuned over a fully tuned model
            return _Target(spec, self.settings.stored_path(stored.foundation), artifact, tuned)
        base_dir = base_models.materialize(spec, self.settings.base_models_dir)
        return _Target(spec, base_dir, artifact, tuned)

    def _sampling(self, c: GenerationConfig, target: _Target) -> Sampling:
        defaults = target.tuned or target.spec
        problems = []
        temperature = _pick(c.temperature, defaults.temperature, target.spec.temperature)
        top_p = _pick(c.top_p, defaults.top_p, target.spec.top_p)
        top_k = _pick(c.top_k, defaults.top_k, target.spec.top_k)
        count = _pick(c.candidate_count, 1)
        max_tokens = _pick(c.max_output_tokens, DEFAULT_MAX_OUTPUT_TOKENS)
        numbers = dict(
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            candidate_count=count,
            max_output_tokens=max_tokens,
        )
        wrong = [k for k, v in numbers.items() if not is_number(v)]
        wrong += [
            k
            for k in ("top_k", "candidate_count", "max_output_tokens")
            if k not in wrong and not is_int(numbers[k])
        ]
        if wrong:
            raise InvalidArgument(
                "; ".join(f"{k}: {numbers[k]!r} is not a valid number" for k in wrong)
            )
        problems += sampling_problems(temperature, top_p, top_k, target.spec.max_temperature)
        if not 1 <= count <= MAX_CANDIDATES:
            problems.append(f"candidate_count: {count} must be from 1 to {MAX_CANDIDATES}")
        if not 1 <= max_tokens <= target.spec.output_token_limit:
            problems.append(
                f"max_output_tokens: {max_tokens} must be from 1 to {target.spec.output_token_limit}"
            )
        stops = tuple(c.stop_sequences or ())
        if len(stops) > MAX_STOP_SEQUENCES:
            problems.append(f"stop_sequences: at most {MAX_STOP_SEQUENCES}, got {len(stops)}")
        if any(not isinstance(s, str) or not s for s in stops):
            problems.append("stop_sequences: each must be a non-empty string")
        seed = c.seed
        if seed is not None and (not is_int(seed) or not 0 <= seed < 2**63 - MAX_CANDIDATES):
            problems.append(f"seed: {seed!r} must be a whole number from 0 to 2**63 - 9")
        if problems:
            raise InvalidArgument("; ".join(problems))
        return Sampling(
            temperature=float(temperature),
            top_p=float(top_p) if top_p > 0 else 1.0,
            top_k=int(top_k),
            candidate_count=int(count),
            max_output_tokens=int(max_tokens),
            stop_sequences=stops,
            seed=None if seed is None else int(seed),
        )


class _Target:
    def __init__(self, spec, base_dir: Path, adapter_dir: Path | None = None, tuned=None):
        self.spec, self.base_dir, self.adapter_dir, self.tuned = spec, base_dir, adapter_dir, tuned


def _conversation(prompt: str | Conversation) -> Conversation:
    """A request's prompt as a conversation ending on a user turn, checked."""
    if isinstance(prompt, Conversation):
        conv = data.joined_answers(prompt)  # a streamed answer kept as several model turns
        data.validate_conversation(conv, where="contents", training=False)
        return conv
    if not isinstance(prompt, str) or not prompt:
        raise InvalidArgument("prompt: text is required")
    return Conversation.ask(prompt)


def _pick(*values):
    return next(v for v in values if v is not None)
