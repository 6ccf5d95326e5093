"""Each API version speaks for itself: an operation read under ``/v1beta3`` names
``v1beta3`` messages in its ``@type``s, and so on for ``/v1beta`` and ``/v1``."""

from __future__ import annotations

import time
import uuid

import pytest

GOOGLE = "type.googleapis.com/google.ai.generativelanguage"


def _done(http, url: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op = http.get(url).json()
        if op.get("done"):
            return op
        time.sleep(0.2)
    raise AssertionError(f"{url} not done after {timeout} s")


@pytest.mark.parametrize("version", ["v1beta", "v1beta3", "v1"])
def test_operations_name_the_messages_of_the_version_asked(http, version):
    model_id = f"typed-{version}-{uuid.uuid4().hex[:6]}"
    body = {
        "baseModel": "models/text-bison-001",
        "tuningTask": {
            "hyperparameters": {"epochCount": 1, "batchSize": 2},
            "trainingData": {
                "examples": {"examples": [{"textInput": "1", "output": "2"}] * 2},
            },
        },
    }
    created = http.post(f"/{version}/tunedModels", params={"tunedModelId": model_id}, json=body)
    assert created.status_code == 200, created.text
    op = created.json()
    assert op["metadata"]["@type"] == f"{GOOGLE}.{version}.CreateTunedModelMetadata"

    done = _done(http, f"/{version}/{op['name']}")
    assert "error" not in done, done
    assert done["metadata"]["@type"] == f"{GOOGLE}.{version}.CreateTunedModelMetadata"
    assert done["response"]["@type"] == f"{GOOGLE}.{version}.TunedModel"

    for listing in (f"/{version}/tunedModels/{model_id}/operations", f"/{version}/operations"):
        ops = http.get(listing).json()["operations"]
        mine = [o for o in ops if o["name"] == op["name"]]
        assert len(mine) == 1, listing
        assert mine[0]["metadata"]["@type"] == f"{GOOGLE}.{version}.CreateTunedModelMetadata"
        assert mine[0]["response"]["@type"] == f"{GOOGLE}.{version}.TunedModel"
        others = {o["metadata"]["@type"].split(".")[-2] for o in ops}
        assert others == {version}, listing  # every operation, whichever way it was created
