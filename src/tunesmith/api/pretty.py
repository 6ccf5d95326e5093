"""JSON answers indented as Google's REST answers are, so ``curl ... | grep state`` shows
one field per line, as in the seed's quickstart."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse


class PrettyJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return (json.dumps(content, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
