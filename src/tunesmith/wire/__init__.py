"""Proto-JSON: the wire form of every record, used by the HTTP API and the remote SDK.

Out: camelCase keys, enum names, RFC 3339 timestamps, ``None`` fields left out. In: camelCase
or snake_case keys, enum names or numbers, numbers or numeric strings. What Google's clients
choke on is never written: a TunedModel carries no ``tuningTask.trainingData`` and no
``learningRateMultiplier`` (google-generativeai's dataclasses crash on them), and an
operation holds only the fields of ``google.longrunning.Operation`` (its client parses them
strictly, so the ``@type`` names must be ones it knows).
"""

from ._base import camel, parse_timestamp, proto_int, snake, snake_keys, timestamp
from .generation import (
    FINISH_REASONS,
    content_chunks,
    content_request_from_json,
    content_response,
    contents_prompt,
    contents_text,
    conversation_to_json,
    count_request_text,
    generation_config_from_json,
    generation_config_to_json,
    generation_from_content_json,
    model_from_json,
    model_to_json,
    text_request_from_json,
    text_response,
)
from .tuning import (
    create_request_from_json,
    create_request_to_json,
    operation_from_json,
    operation_to_json,
    snapshot_from_json,
    snapshot_to_json,
    tuned_model_from_json,
    tuned_model_to_json,
    type_url,
    update_from_json,
    update_mask,
    update_to_json,
    validation_losses_from_json,
    validation_losses_to_json,
    wait_request_to_json,
    wait_timeout_from_json,
)

__all__ = [
    "FINISH_REASONS",
    "proto_int",
    "camel",
    "content_chunks",
    "content_request_from_json",
    "content_response",
    "contents_prompt",
    "contents_text",
    "conversation_to_json",
    "count_request_text",
    "create_request_from_json",
    "create_request_to_json",
    "generation_config_from_json",
    "generation_config_to_json",
    "generation_from_content_json",
    "model_from_json",
    "model_to_json",
    "operation_from_json",
    "operation_to_json",
    "parse_timestamp",
    "snake",
    "snake_keys",
    "snapshot_from_json",
    "snapshot_to_json",
    "text_request_from_json",
    "text_response",
    "timestamp",
    "tuned_model_from_json",
    "tuned_model_to_json",
    "type_url",
    "update_from_json",
    "update_mask",
    "update_to_json",
    "validation_losses_from_json",
    "validation_losses_to_json",
    "wait_request_to_json",
    "wait_timeout_from_json",
]
