"""Generation in Google's two SDK shapes: PaLM's ``generate_text`` and Gemini's
``GenerativeModel(...).generate_content``.

    ts.generate_text(model="tunedModels/number-generator", prompt="9", temperature=0).result
    ts.GenerativeModel("tunedModels/number-generator").generate_content("9").text
    chat = ts.GenerativeModel("tunedModels/pirate", system_instruction="...").start_chat()
    chat.send_message("Hello").text; chat.send_message("And then?").text; chat.history
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from ..errors import InvalidArgument
from ..records.conversations import MODEL, USER, Conversation, Turn
from ..records.generation import Delta
from ..types import Candidate, Generation, GenerationConfig, Model, TunedModel
from .clients import Client, RequestOptions, default_client


@dataclasses.dataclass
class Completion:
    """What ``generate_text`` returns: ``.result`` is the first candidate's text."""

    candidates: list[dict]
    generation: Generation

    @property
    def result(self) -> str | None:
        return self.candidates[0]["output"] if self.candidates else None


def generate_text(
    *,
    model="models/smollm2-135m-instruct",
    prompt: str,
    temperature: float | None = None,
    candidate_count: int | None = None,
    max_output_tokens: int | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    stop_sequences: str | Iterable[str] | None = None,
    safety_settings=None,
    client: Client | None = None,
    request_options=None,
) -> Completion:
    """Complete ``prompt`` with a base or tuned model; temperature 0 is greedy."""
    c = client if client is not None else default_client()
    config = GenerationConfig(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        candidate_count=candidate_count,
        max_output_tokens=max_output_tokens,
        stop_sequences=_stops(stop_sequences),
    )
    gen = c.generate(_model_name(model), prompt, config, RequestOptions.of(request_options))
    return Completion([{"output": cand.output} for cand in gen.candidates], gen)


def count_text_tokens(model, prompt: str, *, client=None, request_options=None) -> dict:
    c = client if client is not None else default_client()
    n = c.count_tokens(_model_name(model), prompt, RequestOptions.of(request_options))
    return {"token_count": n}


@dataclasses.dataclass
class Part:
    text: str


@dataclasses.dataclass
class Content:
    parts: list[Part]
    role: str = "model"


@dataclasses.dataclass
class ResponseCandidate:
    content: Content
    finish_reason: str | None  # None in a streamed chunk before the candidate's last
    index: int = 0
    token_count: int = 0


@dataclasses.dataclass
class GenerateContentResponse:
    candidates: list[ResponseCandidate]
    usage_metadata: dict

    @property
    def text(self) -> str:
        if not self.candidates:
            raise ValueError("the response has no candidates")
        return "".join(p.text for p in self.candidates[0].content.parts)

    @property
    def parts(self) -> list[Part]:
        return self.candidates[0].content.parts if self.candidates else []


class GenerativeModel:
    """``GenerativeModel("tunedModels/ID").generate_content("prompt")``, as in Gemini's SDK.

    ``system_instruction`` (text or a content) goes with every request; contents given as a
    list of turns (``{"role": "user" | "model", "parts": [...]}``) are a conversation, and
    :meth:`start_chat` keeps one.
    """

    def __init__(
        self,
        model_name: str = "models/smollm2-135m-instruct",
        generation_config: GenerationConfig | dict | None = None,
        *,
        system_instruction=None,
        client: Client | None = None,
        **_ignored,  # safety_settings, tools: not used by these models
    ):
        self.model_name = _model_name(model_name)
        self._config = generation_config
        self._client = client
        self._system = "" if system_instruction is None else _text(system_instruction)

    def __repr__(self) -> str:
        return f"GenerativeModel(model_name={self.model_name!r})"

    def generate_content(
        self,
        contents,
        *,
        generation_config=None,
        stream: bool = False,
        request_options=None,
        **_ignored,
    ) -> GenerateContentResponse | Iterator[GenerateContentResponse]:
        c = self._client if self._client is not None else default_client()
        config = _merge(_config(self._config), _config(generation_config))
        opts = RequestOptions.of(request_options)
        prompt = _prompt(contents, self._system)
        if stream:  # chunks as the tokens are generated; the last has finish reasons and usage
            events = c.generate_stream(self.model_name, prompt, config, opts)
            return (_chunk(event) for event in events)
        return _response(c.generate(self.model_name, prompt, config, opts))

    def count_tokens(self, contents, *, request_options=None) -> dict:
        c = self._client if self._client is not None else default_client()
        prompt = _prompt(contents, self._system)
        n = c.count_tokens(self.model_name, prompt, RequestOptions.of(request_options))
        return {"total_tokens": n}

    def start_chat(self, *, history=None) -> ChatSession:
        """A conversation with this model: ``chat.send_message("...")`` answers with the
        whole conversation so far in view, and keeps the turns in ``chat.history``."""
        return ChatSession(self, history)


class ChatSession:
    """What :meth:`GenerativeModel.start_chat` returns, as in Gemini's SDK."""

    def __init__(self, model: GenerativeModel, history=None):
        self.model = model
        self.history: list[Content] = [_content(item) for item in history or ()]

    def send_message(
        self, content, *, generation_config=None, stream: bool = False, request_options=None
    ):
        """The model's answer to ``content`` after the history; both join the history
        (a streamed answer joins it once the stream is read to its end)."""
        asked = Content([Part(_text(content))], USER)
        contents = [*self.history, asked]
        answer = self.model.generate_content(
            [dataclasses.asdict(c) for c in contents],
            generation_config=generation_config,
            stream=stream,
            request_options=request_options,
        )
        if isinstance(answer, GenerateContentResponse):  # not streamed
            self.history += [asked, Content([Part(answer.text)], MODEL)]
            return answer
        return self._streamed(asked, answer)

    def _streamed(self, asked: Content, chunks):
        texts = []
        for chunk in chunks:
            if chunk.candidates:
                texts.append("".join(p.text for p in chunk.candidates[0].content.parts))
            yield chunk
        self.history += [asked, Content([Part("".join(texts))], MODEL)]

    def rewind(self) -> tuple[Content, Content]:
        """Takes the last question and answer off the history and returns them."""
        if len(self.history) < 2:
            raise InvalidArgument("history: nothing to rewind")
        asked, answered = self.history[-2:]
        del self.history[-2:]
        return asked, answered


def _response(gen: Generation) -> GenerateContentResponse:
    return GenerateContentResponse(
        candidates=[
            ResponseCandidate(Content([Part(c.output)]), c.finish_reason, i, c.token_count)
            for i, c in enumerate(gen.candidates)
        ],
        usage_metadata={
            "prompt_token_count": gen.prompt_token_count,
            "candidates_token_count": gen.candidates_token_count,
            "total_token_count": gen.prompt_token_count + gen.candidates_token_count,
        },
    )


def _chunk(event: Delta | Generation) -> GenerateContentResponse:
    if isinstance(event, Generation):
        done = [Candidate("", c.finish_reason, c.token_count) for c in event.candidates]
        return _response(Generation(done, event.prompt_token_count))
    return GenerateContentResponse(
        candidates=[
            ResponseCandidate(Content([Part(text)]), None, i)
            for i, text in sorted(event.texts.items())
        ],
        usage_metadata={},
    )


def _model_name(model) -> str:
    if isinstance(model, (TunedModel, Model)):
        return model.name
    if not isinstance(model, str) or not model:
        raise InvalidArgument(f"model: expected a model name, got {model!r}")
    if model.startswith(("models/", "tunedModels/")):
        return model
    return f"models/{model}"


def _stops(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _config(value) -> GenerationConfig:
    if value is None:
        return GenerationConfig()
    if isinstance(value, GenerationConfig):
        return value
    if isinstance(value, dict):
        known = {f.name for f in dataclasses.fields(GenerationConfig)}
        unknown = set(value) - known
        if unknown:
            raise InvalidArgument(
                f"generation_config: unknown field(s) {', '.join(sorted(unknown))}"
            )
        values = dict(value)
        values["stop_sequences"] = _stops(values.get("stop_sequences"))
        return GenerationConfig(**values)
    raise InvalidArgument(f"generation_config: expected a dict, not {type(value).__name__}")


def _merge(base: GenerationConfig, override: GenerationConfig) -> GenerationConfig:
    merged = dataclasses.replace(base)
    for f in dataclasses.fields(GenerationConfig):
        value = getattr(override, f.name)
        if value not in (None, []):
            setattr(merged, f.name, value)
    return merged


def _prompt(contents, system: str = "") -> str | Conversation:
    """What to generate from: the text of ``contents`` (a string, parts, a content dict), or
    a conversation when ``contents`` is a list of turns with roles or there is a system
    instruction."""
    turns = _turns(contents)
    if turns is not None or system:
        return Conversation(turns or [Turn(USER, _text(contents))], system)
    return _text(contents)


def _turns(contents) -> list[Turn] | None:
    """A list of contents that name their roles as turns; None for anything else."""
    if isinstance(contents, (str, dict, Part, Content)) or not isinstance(contents, Iterable):
        return None
    items = list(contents)
    roles = [r for r in map(_role, items) if r is not None]
    if not items or len(roles) < len(items) or roles == [USER]:
        return None
    return [Turn(r, _text(item)) for r, item in zip(roles, items, strict=True)]


def _role(item) -> str | None:
    role = item.role if isinstance(item, Content) else None
    if isinstance(item, dict):
        role = item.get("role")
    return {"assistant": MODEL}.get(role, role) if isinstance(role, str) else None


def _content(item) -> Content:
    """A history entry (a Content, or a dict with role and parts) as a Content."""
    role = _role(item)
    if role is None:
        raise InvalidArgument("history: each entry needs a 'role' (user or model) and 'parts'")
    return Content([Part(_text(item))], role)


def _text(contents) -> str:
    """The text of ``contents``: a string, parts, a content dict, or a list of them."""
    if isinstance(contents, str):
        return contents
    if isinstance(contents, dict):
        if "parts" in contents:
            return _text(contents["parts"])
        if "text" in contents:
            return contents["text"]
        raise InvalidArgument("contents: a content needs 'parts' or 'text'")
    if isinstance(contents, (Part, Content)):
        return _text(dataclasses.asdict(contents))
    if isinstance(contents, Iterable):
        texts = [_text(item) for item in contents]
        if not texts:
            raise InvalidArgument("contents: no text was given")
        return "\n".join(texts)
    raise InvalidArgument(f"contents: expected text, not {type(contents).__name__}")
