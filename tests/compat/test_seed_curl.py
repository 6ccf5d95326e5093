"""The seed's REST quickstart curl flow, byte for byte, against tunesmith on /v1beta3."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("seed_curl_flow.sh")


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_seed_curl_flow_runs_unchanged(server, tmp_path):
    env = dict(os.environ, base_url=server.url, access_token="token", project_id="my-project")
    run = subprocess.run(
        ["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    op = json.loads((tmp_path / "tunemodel.json").read_text())
    # 15 examples, batch 2, 3 epochs: 23 steps, as Google reported for the same body.
    assert op["metadata"]["totalSteps"] == 23
    assert op["metadata"]["tunedModel"].startswith("tunedModels/number-generator-model-")
    lines = run.stdout.splitlines()
    # `| grep state` shows the state line; `| grep output` the two candidates' outputs.
    assert any(line.strip().startswith('"state": "') for line in lines)
    assert sum(line.strip().startswith('"output": ') for line in lines) == 2
    model = subprocess.run(
        ["curl", "-s", f"{server.url}/v1beta3/{op['metadata']['tunedModel']}"],
        capture_output=True,
        text=True,
        check=True,
    )
    tuned = json.loads(model.stdout)
    assert tuned["state"] == "ACTIVE"
    assert tuned["tuningTask"]["hyperparameters"] == {
        "epochCount": 3,
        "batchSize": 2,
        "learningRate": 0.001,
    }
    assert len(tuned["tuningTask"]["snapshots"]) == 23
