"""OpenAI's inference requests as the service's arguments: the model name, the prompt (a
conversation for ``/chat/completions``, a text for ``/completions``) and a
:class:`~tunesmith.types.GenerationConfig`.

Each field OpenAI defines is either honoured, ignored because it cannot change the answer
(``user``, ``metadata``, ``store``, ...), or refused with a 400 naming it when it asks for
something tunesmith does not do (tools, log-probabilities, penalties, ...): a caller never
gets an answer that silently ignored what it asked for.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ... import data
from ...errors import InvalidArgument
from ...records.conversations import Conversation
from ...types import GenerationConfig

# Fields whose value cannot change the answer: accepted and ignored.
IGNORED = {
    "user",
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
    "parallel_tool_calls",
    "reasoning_effort",
    "verbosity",
}
# Asking for these is refused unless the value is the one that means "off".
_OFF: dict[str, tuple] = {
    "tools": (None, []),
    "functions": (None, []),
    "tool_choice": (None, "none", "auto"),
    "function_call": (None, "none", "auto"),
    "logprobs": (None, False, 0),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "response_format": (None, {"type": "text"}),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
    "web_search_options": (None,),
    "suffix": (None, ""),
    "echo": (None, False),
    "best_of": (None, 1),
}
_CHAT = {"model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "n"}
_CHAT |= {"stop", "seed", "stream", "stream_options"}
_COMPLETION = {"model", "prompt", "temperature", "top_p", "max_tokens", "n", "stop", "seed"}
_COMPLETION |= {"stream", "stream_options"}


def _object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise InvalidArgument("request: the body must be a JSON object")
    return body


def _check_fields(body: dict, known: set[str]) -> None:
    for field, value in body.items():
        if field in known or field in IGNORED:
            continue
        if field in _OFF:
            if value not in _OFF[field]:
                raise InvalidArgument(f"{field}: not supported by this server")
            continue
        raise InvalidArgument(f"{field}: unknown parameter")


def model_of(body: dict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidArgument("model: a model name is required")
    return model


def streaming(body: dict) -> tuple[bool, bool]:
    """Whether to stream, and whether a last chunk carries the usage
    (``stream_options.include_usage``)."""
    stream = body.get("stream")
    if stream not in (None, True, False):
        raise InvalidArgument(f"stream: {stream!r} must be true or false")
    options = body.get("stream_options")
    if options is None:
        return bool(stream), False
    if not stream:
        raise InvalidArgument("stream_options: only allowed when stream is true")
    if not isinstance(options, dict) or options.get("include_usage") not in (None, True, False):
        raise InvalidArgument('stream_options: expected {"include_usage": true|false}')
    return True, bool(options.get("include_usage"))


@dataclasses.dataclass
class Inference:
    """One inference request, parsed."""

    model: str
    prompt: str | Conversation
    """A text (``/completions``) or a conversation (``/chat/completions``)."""
    config: GenerationConfig
    stream: bool
    include_usage: bool
    names: dict[str, str]
    """The service's names of fields to this request's (``candidate_count`` is ``n``)."""

    def rename(self, e: InvalidArgument) -> InvalidArgument:
        """The service's error about a field, naming the field as this request did."""
        message = e.message
        for theirs, ours in self.names.items():
            message = re.sub(rf"(^|; ){theirs}([:,])", rf"\g<1>{ours}\g<2>", message)
        return InvalidArgument(message)


def _inference(body: dict, model: str, prompt: str | Conversation) -> Inference:
    stream, include_usage = streaming(body)
    field = (
        "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    )
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    elif stop is not None and not isinstance(stop, list):
        raise InvalidArgument("stop: expected a string or a list of strings")
    if stop is not None and len(stop) > 4:
        raise InvalidArgument(f"stop: at most 4 sequences, got {len(stop)}")
    config = GenerationConfig(
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        candidate_count=_whole(body, "n"),
        max_output_tokens=_whole(body, field),
        stop_sequences=list(stop or []),
        seed=_whole(body, "seed"),
    )
    names = {"candidate_count": "n", "max_output_tokens": field, "stop_sequences": "stop"}
    if isinstance(prompt, Conversation):
        # the service checks a conversation as Google's contents, its length as a prompt
        names.update(contents="messages", prompt="messages")
    return Inference(model, prompt, config, stream, include_usage, names)


def chat_request(body: Any) -> Inference:
    """``/chat/completions``: the messages become a conversation by the one parser of
    OpenAI's messages (:func:`tunesmith.data.conversation_from_json`, also training data's),
    which the service renders with the base's chat template as training does."""
    body = _object(body)
    _check_fields(body, _CHAT)
    model = model_of(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidArgument("messages: a non-empty list of messages is required")
    conversation = data.conversation_from_json({"messages": messages}, where="messages")
    return _inference(body, model, conversation)


def completion_request(body: Any) -> Inference:
    """``/completions``: the model, the prompt text and the sampling parameters."""
    body = _object(body)
    _check_fields(body, _COMPLETION)
    model = model_of(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidArgument("prompt: expected one string (lists and token ids are not supported)")
    if not prompt:
        raise InvalidArgument("prompt: text is required")
    return _inference(body, model, prompt)


def _number(body: dict, field: str):
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{field}: {value!r} is not a number")
    return value


def _whole(body: dict, field: str):
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{field}: {value!r} is not a whole number")
    return value
