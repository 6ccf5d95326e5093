"""The Vertex AI SDK's tuning entry point (``vertexai.language_models``), over tunesmith.

    from tunesmith.vertex import TextGenerationModel

    model = TextGenerationModel.from_pretrained("text-bison@001")
    job = model.tune_model(training_data="data.jsonl", train_steps=100,
                           learning_rate_multiplier=1.0, model_display_name="numbers")
    tuned = job.get_tuned_model()          # waits for the run
    print(tuned.predict("9").text)
    model.list_tuned_model_names()         # only the tuned models of this base

Training data uses Vertex's column names, ``input_text`` and ``output_text`` (a pandas
DataFrame or a JSONL file). ``train_steps`` becomes whole epochs at batch size 8, so a run
takes at least that many steps.
"""

from __future__ import annotations

import dataclasses
import math

from . import data
from .errors import InvalidArgument
from .sdk import generative
from .sdk import models as sdk
from .sdk.clients import Client
from .sdk.operations import CreateTunedModelOperation
from .types import TunedModel

VERTEX_BATCH_SIZE = 8


@dataclasses.dataclass
class TextGenerationResponse:
    text: str
    is_blocked: bool = False
    safety_attributes: dict = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


class TextGenerationModel:
    """A base model (``from_pretrained``) or a tuned one (``get_tuned_model``)."""

    def __init__(self, model_name: str, *, client: Client | None = None):
        self._model_name = model_name
        self._client = client

    def __repr__(self) -> str:
        return f"TextGenerationModel({self._model_name!r})"

    @property
    def resource_name(self) -> str:
        return self._model_name

    @classmethod
    def from_pretrained(cls, model_name: str, *, client: Client | None = None):
        name = model_name if model_name.startswith("models/") else f"models/{model_name}"
        sdk.get_base_model(name, client=client)  # NotFound now rather than at tuning time
        return cls(name, client=client)

    @classmethod
    def get_tuned_model(cls, tuned_model_name: str, *, client: Client | None = None):
        model = sdk.get_tuned_model(tuned_model_name, client=client)
        return cls(model.name, client=client)

    def tune_model(
        self,
        training_data,
        *,
        train_steps: int = 1000,
        learning_rate_multiplier: float | None = None,
        learning_rate: float | None = None,
        model_display_name: str | None = None,
        tuning_job_location: str | None = None,
        tuned_model_location: str | None = None,
        **_ignored,  # evaluation_spec, accelerator_type, ...: Vertex-only settings
    ) -> TuningJob:
        if isinstance(training_data, str) and training_data.startswith("gs://"):
            raise InvalidArgument(
                "training_data: gs:// URLs need Google Cloud Storage; pass a local path, an "
                "http(s) URL or a DataFrame"
            )
        if not isinstance(train_steps, int) or train_steps < 1:
            raise InvalidArgument(f"train_steps: {train_steps!r} must be a positive integer")
        examples = data.load_examples(training_data, "input_text", "output_text")
        batch = min(VERTEX_BATCH_SIZE, len(examples))
        epochs = max(1, math.ceil(train_steps * batch / len(examples)))
        op = sdk.create_tuned_model(
            self._model_name,
            examples,
            display_name=model_display_name,
            epoch_count=epochs,
            batch_size=batch,
            learning_rate=learning_rate,
            learning_rate_multiplier=learning_rate_multiplier,
            client=self._client,
        )
        return TuningJob(op, self._client)

    def list_tuned_model_names(self) -> list[str]:
        base = sdk.get_base_model(self._model_name, client=self._client).name
        return [m.name for m in sdk.list_tuned_models(client=self._client) if m.base_model == base]

    def predict(
        self,
        prompt: str,
        *,
        max_output_tokens: int | None = 128,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        stop_sequences: list[str] | None = None,
        candidate_count: int | None = None,
    ) -> TextGenerationResponse:
        completion = generative.generate_text(
            model=self._model_name,
            prompt=prompt,
            temperature=temperature,
            candidate_count=candidate_count,
            max_output_tokens=max_output_tokens,
            top_p=top_p,
            top_k=top_k,
            stop_sequences=stop_sequences,
            client=self._client,
        )
        return TextGenerationResponse(completion.result or "")


class TuningJob:
    """What ``tune_model`` returns; ``get_tuned_model()`` waits for the run."""

    def __init__(self, operation: CreateTunedModelOperation, client: Client | None):
        self.operation = operation
        self._client = client

    @property
    def tuned_model_name(self) -> str:
        return self.operation.metadata.tuned_model

    def get_tuned_model(self, timeout: float | None = None) -> TextGenerationModel:
        model: TunedModel = self.operation.result(timeout)
        return TextGenerationModel(model.name, client=self._client)


__all__ = ["TextGenerationModel", "TextGenerationResponse", "TuningJob"]
