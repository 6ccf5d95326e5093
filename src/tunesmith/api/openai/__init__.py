"""OpenAI's dialect, mounted at ``/openai/v1`` beside Google's routes.

``OpenAI(base_url="http://HOST:PORT/openai/v1", api_key=KEY)`` works unmodified: the same
API keys (``Authorization: Bearer KEY``), owners, permissions and limits as Google's routes
(:mod:`..deps`, :mod:`..limits`), errors in OpenAI's envelope (:mod:`.errors`, one table
from :mod:`tunesmith.errors`), lists in OpenAI's shape (:mod:`.pagination`). Each module is
a thin adapter over the service, one per resource:

* :mod:`.models` — ``/models``;
* :mod:`.inference` — ``/chat/completions``, ``/completions``;
* :mod:`.files` — ``/files``;
* :mod:`.fine_tuning` — ``/fine_tuning/jobs``.

Model names (``ft:BASE:OWNER:SUFFIX:JOBID``, ``MODEL:ckpt-step-N``, ``tunedModels/ID``, a base
model's short name) resolve in one place: :mod:`tunesmith.service.model_names`.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import files, fine_tuning, inference, models
from .errors import PREFIX

router = APIRouter()
for _module in (models, inference, files, fine_tuning):
    router.include_router(_module.router)

__all__ = ["PREFIX", "router"]
