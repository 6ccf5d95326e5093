"""Flat functions over tuned models, base models and operations, as in Google's SDK.

    import tunesmith as ts
    op = ts.create_tuned_model(
        source_model="models/smollm2-135m-instruct",
        training_data=[{"text_input": "1", "output": "2"}, ...],
        id="number-generator", epoch_count=3, batch_size=2, learning_rate=0.001)
    model = op.result()

Every function takes the keyword-only ``client`` (default: the configured one) and
``request_options`` (``{"timeout": s, "retry": n}``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .. import data
from ..errors import InvalidArgument
from ..records.tuning import CreateTunedModelRequest
from ..types import Model, TunedModel, TunedModelExport
from .clients import Client, RequestOptions, default_client
from .operations import CreateTunedModelOperation


def _client(client: Client | None) -> Client:
    return client if client is not None else default_client()


def _name(value, collection: str) -> str:
    """Accept a name, a bare id, or a record with ``.name`` (as Google's SDK does)."""
    if isinstance(value, (TunedModel, Model)):
        return value.name
    if isinstance(value, dict) and "name" in value:
        return value["name"]
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"name: expected '{collection}/ID', got {value!r}")
    return value if "/" in value else f"{collection}/{value}"


def create_tuned_model(
    source_model,
    training_data,
    *,
    id: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    epoch_count: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    learning_rate_multiplier: float | None = None,
    input_key: str = "text_input",
    output_key: str = "output",
    method: str = "lora",
    validation_data=None,
    last_turn_only: bool = False,
    client: Client | None = None,
    request_options=None,
) -> CreateTunedModelOperation:
    """Start tuning and return at once; the run happens in a worker.

    ``training_data`` takes every form of Google's SDK: examples, dicts, tuples, a mapping of
    columns or a DataFrame, a CSV / JSON / JSONL path or URL, a Google Sheets URL.
    Rows may also be conversations (tunesmith's own): Vertex's Gemini tuning rows
    (``contents`` with user / model turns, ``systemInstruction``) or OpenAI's chat rows
    (``messages``, with ``weight`` 0 or 1 on assistant turns), from a list or a JSONL file.
    Every model turn is learned from unless weighted 0; ``last_turn_only=True`` learns from
    each conversation's last model turn only.
    ``method`` is ``"lora"`` (default) or ``"full"``.

    ``validation_data`` (tunesmith's own) takes the same forms and keys: held-out examples
    whose mean loss is recorded at the end of every epoch, shown in ``op.history``.
    """
    c, opts = _client(client), RequestOptions.of(request_options)
    if isinstance(source_model, (TunedModel, Model)):
        source_model = source_model.name
    examples = data.load_examples(
        training_data, input_key, output_key, last_turn_only=last_turn_only
    )
    held_out = None
    if validation_data is not None:
        held_out = data.load_examples(
            validation_data,
            input_key,
            output_key,
            field="validation_data",
            last_turn_only=last_turn_only,
        )
    req = CreateTunedModelRequest(
        source_model=source_model,
        examples=examples,
        id=id,
        display_name=display_name,
        description=description,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        epoch_count=epoch_count,
        batch_size=batch_size,
        learning_rate=learning_rate,
        learning_rate_multiplier=learning_rate_multiplier,
        method=method,
        validation_examples=held_out,
    )
    return CreateTunedModelOperation(c.create_tuned_model(req, opts), c, opts)


def get_tuned_model(name, *, client: Client | None = None, request_options=None) -> TunedModel:
    return _client(client).get_tuned_model(
        _name(name, "tunedModels"), RequestOptions.of(request_options)
    )


def list_tuned_models(
    *, page_size: int | None = 50, filter: str | None = None, client=None, request_options=None
) -> Iterator[TunedModel]:
    """Every tuned model, fetched a page at a time."""
    c, opts = _client(client), RequestOptions.of(request_options)
    token = None
    while True:
        models, token = c.list_tuned_models(page_size, token, filter, opts)
        yield from models
        if not token:
            return


def update_tuned_model(
    tuned_model, updates: dict | None = None, *, client=None, request_options=None
) -> TunedModel:
    """Change display_name, description, temperature, top_p or top_k.

    Either ``update_tuned_model("tunedModels/ID", {"description": "..."})``, or pass an edited
    :class:`TunedModel` and the fields that differ from the stored one are sent.
    """
    c, opts = _client(client), RequestOptions.of(request_options)
    name = _name(tuned_model, "tunedModels")
    if updates is None:
        if not isinstance(tuned_model, TunedModel):
            raise InvalidArgument("updates: give a dict of changes, or pass an edited TunedModel")
        current = c.get_tuned_model(name, opts)
        updates = {
            f: getattr(tuned_model, f)
            for f in ("display_name", "description", "temperature", "top_p", "top_k")
            if getattr(tuned_model, f) != getattr(current, f)
        }
        if not updates:
            return current
    if not isinstance(updates, dict):
        raise InvalidArgument(f"updates: expected a dict, not {type(updates).__name__}")
    return c.update_tuned_model(name, dict(updates), list(updates), opts)


def delete_tuned_model(name, *, client=None, request_options=None) -> None:
    _client(client).delete_tuned_model(
        _name(name, "tunedModels"), RequestOptions.of(request_options)
    )


def export_tuned_model(
    name,
    format: str,
    path=None,
    *,
    quantization: str | None = None,
    progress=None,
    client: Client | None = None,
    request_options=None,
) -> TunedModelExport:
    """tunesmith's own: write a tuned model for another runtime into the folder ``path``
    (default ``./ID-FORMAT``) and return which files it holds.

        ts.export_tuned_model("tunedModels/number-generator", format="gguf", path="out")

    ``format``: ``adapter`` (peft folder), ``merged`` (transformers folder), ``gguf`` (one
    GGUF file and an Ollama Modelfile) or ``gguf-lora`` (a GGUF LoRA adapter, the base as
    GGUF, a Modelfile). ``quantization`` (GGUF formats): F16 (default), BF16, Q8_0 or F32.
    ``progress(what, done, total)`` is called as files are written (or downloaded).
    """
    c, opts = _client(client), RequestOptions.of(request_options)
    name = _name(name, "tunedModels")
    if path is None:
        path = Path(f"{name.rsplit('/', 1)[-1]}-{format}")
    return c.export_tuned_model(name, format, Path(path), quantization, progress, opts)


def list_models(
    *, page_size: int | None = 50, client=None, request_options=None
) -> Iterator[Model]:
    yield from _client(client).list_models(RequestOptions.of(request_options))


def get_model(name, *, client=None, request_options=None) -> Model | TunedModel:
    """A base model (``models/...``) or, like Google's SDK, a tuned one (``tunedModels/...``)."""
    c, opts = _client(client), RequestOptions.of(request_options)
    name = _name(name, "models")
    if name.startswith("tunedModels/"):
        return c.get_tuned_model(name, opts)
    return c.get_model(name, opts)


def get_base_model(name, *, client=None, request_options=None) -> Model:
    return _client(client).get_model(_name(name, "models"), RequestOptions.of(request_options))


def get_operation(name: str, *, client=None, request_options=None) -> CreateTunedModelOperation:
    """Find an operation again, from any process (``tunedModels/ID/operations/OP``)."""
    c, opts = _client(client), RequestOptions.of(request_options)
    return CreateTunedModelOperation(c.get_operation(name, opts), c, opts)


def list_operations(
    tuned_model=None, *, client=None, request_options=None
) -> Iterator[CreateTunedModelOperation]:
    """The operations of one tuned model, or all of them."""
    c, opts = _client(client), RequestOptions.of(request_options)
    name = None if tuned_model is None else _name(tuned_model, "tunedModels")
    for record in c.list_operations(name, opts):
        yield CreateTunedModelOperation(record, c, opts)
