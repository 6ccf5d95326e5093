"""tunesmith: tune and serve open-weight models with Google's tuning API, on your own machine.

import tunesmith as ts
op = ts.create_tuned_model(
    source_model="models/smollm2-135m-instruct",
    training_data=[{"text_input": "1", "output": "2"}, {"text_input": "3", "output": "4"}],
    id="number-generator", epoch_count=3, batch_size=2, learning_rate=0.001)
for _ in op.wait_bar():
    pass
print(ts.generate_text(model="tunedModels/number-generator", prompt="9").result)
"""

from . import errors
from .errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    TunesmithError,
)
from .sdk.clients import EmbeddedClient, RequestOptions, configure
from .sdk.generative import (
    Completion,
    GenerateContentResponse,
    GenerativeModel,
    count_text_tokens,
    generate_text,
)
from .sdk.models import (
    create_tuned_model,
    delete_tuned_model,
    export_tuned_model,
    get_base_model,
    get_model,
    get_operation,
    get_tuned_model,
    list_models,
    list_operations,
    list_tuned_models,
    update_tuned_model,
)
from .sdk.operations import CreateTunedModelOperation
from .sdk.permissions import Permission, Permissions
from .types import (
    Dataset,
    GenerationConfig,
    Hyperparameters,
    Model,
    TunedModel,
    TunedModelExport,
    TunedModelState,
    TuningExample,
    TuningSnapshot,
    TuningTask,
)
from .version import __version__ as __version__

__all__ = [
    "AlreadyExists",
    "Completion",
    "CreateTunedModelOperation",
    "Dataset",
    "EmbeddedClient",
    "FailedPrecondition",
    "GenerateContentResponse",
    "GenerationConfig",
    "GenerativeModel",
    "Hyperparameters",
    "InvalidArgument",
    "Model",
    "NotFound",
    "Permission",
    "Permissions",
    "RequestOptions",
    "ResourceExhausted",
    "TunedModel",
    "TunedModelExport",
    "TunedModelState",
    "TunesmithError",
    "TuningExample",
    "TuningSnapshot",
    "TuningTask",
    "configure",
    "count_text_tokens",
    "create_tuned_model",
    "delete_tuned_model",
    "errors",
    "export_tuned_model",
    "generate_text",
    "get_base_model",
    "get_model",
    "get_operation",
    "get_tuned_model",
    "list_models",
    "list_operations",
    "list_tuned_models",
    "update_tuned_model",
]
