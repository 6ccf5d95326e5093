"""OpenAPI descriptions of the bodies the routes read themselves (trailing-comma tolerant
JSON is parsed by hand, so FastAPI cannot infer them)."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument, NotFound

_SNAPSHOT = {
    "type": "object",
    "properties": {
        "step": {"type": "integer"},
        "epoch": {"type": "integer"},
        "meanLoss": {"type": "number"},
        "computeTime": {"type": "string", "format": "date-time"},
    },
}
_TEXT_PARTS = {
    "type": "array",
    "items": {"type": "object", "properties": {"text": {"type": "string"}}},
}
_CONVERSATION = {
    "type": "object",
    "description": "Vertex's Gemini tuning row (contents with role user | model, "
    "systemInstruction) or OpenAI's chat row (messages with role system | user | assistant, "
    "content, weight 0 | 1 on assistant messages)",
    "properties": {
        "systemInstruction": {"type": "object", "properties": {"parts": _TEXT_PARTS}},
        "contents": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"type": "string", "enum": ["user", "model"]},
                    "parts": _TEXT_PARTS,
                    "weight": {"type": "integer", "enum": [0, 1]},
                },
            },
        },
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"type": "string", "enum": ["system", "user", "assistant"]},
                    "content": {"type": "string"},
                    "weight": {"type": "integer", "enum": [0, 1]},
                },
            },
        },
    },
}
_DATASET = {
    "type": "object",
    "writeOnly": True,
    "properties": {
        "conversations": {
            "type": "array",
            "items": _CONVERSATION,
            "description": "tunesmith's own: multi-turn examples with a system instruction, "
            "rendered with the base model's chat template; loss on the model turns",
        },
        "examples": {
            "type": "object",
            "properties": {
                "examples": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "textInput": {"type": "string"},
                            "output": {"type": "string"},
                        },
                    },
                }
            },
        },
    },
}
TUNED_MODEL = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "readOnly": True},
        "baseModel": {"type": "string", "example": "models/text-bison-001"},
        "tunedModelSource": {
            "type": "object",
            "properties": {"tunedModel": {"type": "string"}, "baseModel": {"type": "string"}},
        },
        "displayName": {"type": "string", "maxLength": 40},
        "description": {"type": "string"},
        "temperature": {"type": "number"},
        "topP": {"type": "number"},
        "topK": {"type": "integer"},
        "state": {"type": "string", "enum": ["STATE_UNSPECIFIED", "CREATING", "ACTIVE", "FAILED"]},
        "createTime": {"type": "string", "format": "date-time", "readOnly": True},
        "updateTime": {"type": "string", "format": "date-time", "readOnly": True},
        "tuningTask": {
            "type": "object",
            "properties": {
                "startTime": {"type": "string", "format": "date-time", "readOnly": True},
                "completeTime": {"type": "string", "format": "date-time", "readOnly": True},
                "snapshots": {"type": "array", "items": _SNAPSHOT, "readOnly": True},
                "trainingData": _DATASET,
                "validationData": {
                    **_DATASET,
                    "description": "tunesmith's own: held-out examples whose mean loss is "
                    "recorded at the end of every epoch (GET tunedModels/ID/validationLosses)",
                },
                "hyperparameters": {
                    "type": "object",
                    "properties": {
                        "epochCount": {"type": "integer"},
                        "batchSize": {"type": "integer"},
                        "learningRate": {"type": "number"},
                        "learningRateMultiplier": {"type": "number", "writeOnly": True},
                    },
                },
            },
        },
        "method": {"type": "string", "enum": ["lora", "full"], "writeOnly": True},
    },
}
OPERATION = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "metadata": {
            "type": "object",
            "properties": {
                "@type": {"type": "string"},
                "tunedModel": {"type": "string"},
                "totalSteps": {"type": "integer"},
                "completedSteps": {"type": "integer"},
                "completedPercent": {"type": "number"},
                "snapshots": {"type": "array", "items": _SNAPSHOT},
                "phase": {
                    "type": "object",
                    "description": "tunesmith's own, left out for Google's clients (they send "
                    "x-goog-api-client): what an unfinished run is doing",
                    "properties": {
                        "name": {
                            "type": "string",
                            "enum": [
                                "QUEUED",
                                "PREPARING_BASE_MODEL",
                                "LOADING_BASE_MODEL",
                                "TUNING",
                            ],
                        },
                        "description": {"type": "string"},
                        "progress": {"type": "number", "description": "0 to 1, when measured"},
                    },
                },
            },
        },
        "done": {"type": "boolean"},
        "response": TUNED_MODEL,
        "error": {
            "type": "object",
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
        },
    },
}
VALIDATION_LOSSES = {
    "type": "object",
    "properties": {
        "exampleCount": {"type": "integer", "description": "0: tuned without validation data"},
        "validationLosses": {"type": "array", "items": _SNAPSHOT},
    },
}
ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "integer"},
                "message": {"type": "string"},
                "status": {"type": "string"},
            },
        }
    },
}
_CONTENTS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "role": {"type": "string"},
            "parts": {
                "type": "array",
                "items": {"type": "object", "properties": {"text": {"type": "string"}}},
            },
        },
    },
}
_CONFIG: dict[str, Any] = {
    "type": "object",
    "properties": {
        "temperature": {"type": "number"},
        "topP": {"type": "number"},
        "topK": {"type": "integer"},
        "candidateCount": {"type": "integer"},
        "maxOutputTokens": {"type": "integer"},
        "stopSequences": {"type": "array", "items": {"type": "string"}},
    },
}
GENERATE_TEXT = {
    "type": "object",
    "properties": {
        "prompt": {"type": "object", "properties": {"text": {"type": "string"}}},
        **_CONFIG["properties"],
    },
}
GENERATE_CONTENT = {
    "type": "object",
    "properties": {
        "contents": _CONTENTS,
        "systemInstruction": {"type": "object", "properties": {"parts": _TEXT_PARTS}},
        "generationConfig": _CONFIG,
    },
}
COUNT_TOKENS = {
    "type": "object",
    "properties": {"contents": _CONTENTS, "generateContentRequest": GENERATE_CONTENT},
}


def body(schema: dict, required: bool = True) -> dict:
    """``openapi_extra`` for a JSON request body."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema}},
        }
    }


def errors_returned() -> dict:
    """``responses`` for the errors every route may answer, in Google's error shape."""
    return {
        e.http_status: {"description": e.status, "content": {"application/json": {"schema": ERROR}}}
        for e in (InvalidArgument, NotFound)
    }


def returns(schema: dict) -> dict:
    """``responses`` for a JSON answer, and Google's error shape."""
    return {200: {"content": {"application/json": {"schema": schema}}}, **errors_returned()}
