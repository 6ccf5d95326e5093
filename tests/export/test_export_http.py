"""The download route, the remote SDK and the CLI against a real ``tunesmith serve``."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile

import gguf
import pytest
from typer.testing import CliRunner

import tunesmith as ts
from tunesmith.cli import app
from tunesmith.cli._common import NOT_FOUND, OK, USAGE
from tunesmith.sdk.remote import RemoteClient
from tunesmith_server import wait_done

EXAMPLES = [{"textInput": str(i), "output": str(i + 1)} for i in range(1, 9)]


def _create(http, model_id: str, epochs: int = 1, batch_size: int = 4) -> dict:
    body = {
        "baseModel": "models/text-bison-001",
        "tuningTask": {
            "hyperparameters": {"epochCount": epochs, "batchSize": batch_size},
            "trainingData": {"examples": {"examples": EXAMPLES}},
        },
    }
    resp = http.post("/v1beta/tunedModels", params={"tunedModelId": model_id}, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def tuned(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=300) as http:
        op = wait_done(http, _create(http, "exported")["name"])
        assert "error" not in op, op
    return "tunedModels/exported"


def test_the_route_streams_the_gguf_file_or_a_tar_of_the_folder(http, tuned):
    resp = http.get(f"/v1beta/{tuned}:export", params={"format": "gguf", "quantization": "Q8_0"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/octet-stream"
    assert 'filename="exported-Q8_0.gguf"' in resp.headers["content-disposition"]
    assert int(resp.headers["content-length"]) == len(resp.content)
    assert resp.content[:4] == b"GGUF"

    resp = http.get(f"/v1beta/{tuned}:export", params={"format": "adapter"})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-tar"
    assert int(resp.headers["content-length"]) == len(resp.content)
    with tarfile.open(fileobj=io.BytesIO(resp.content)) as tar:
        names = set(tar.getnames())
        config = json.load(tar.extractfile("exported-adapter/adapter_config.json"))
    assert {"exported-adapter/adapter_model.safetensors", "exported-adapter/README.md"} <= names
    assert config["peft_type"] == "LORA"

    resp = http.get(f"/v1beta/{tuned}:export", params={"format": "gguf", "archive": "true"})
    with tarfile.open(fileobj=io.BytesIO(resp.content)) as tar:
        assert sorted(tar.getnames()) == [
            "exported-gguf-F16/Modelfile",
            "exported-gguf-F16/exported-F16.gguf",
        ]


def test_the_route_refuses_clearly(http, tuned):
    bad = http.get(f"/v1beta/{tuned}:export", params={"format": "onnx"})
    assert bad.status_code == 400
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "format: 'onnx'" in bad.json()["error"]["message"]
    missing = http.get(f"/v1beta/{tuned}:export")
    assert missing.status_code == 400 and "format: required" in missing.json()["error"]["message"]
    q = http.get(f"/v1beta/{tuned}:export", params={"format": "gguf", "quantization": "Q4_K_M"})
    assert q.status_code == 400 and "Q4_K_M is not available" in q.json()["error"]["message"]
    nobody = http.get("/v1beta/tunedModels/no-such-model:export", params={"format": "gguf"})
    assert nobody.status_code == 404 and nobody.json()["error"]["status"] == "NOT_FOUND"
    # A model still tuning has nothing to export yet.
    op = _create(http, "still-tuning", epochs=400, batch_size=1)
    early = http.get("/v1beta/tunedModels/still-tuning:export", params={"format": "merged"})
    http.post(f"/v1beta/{op['name']}:cancel")
    assert early.status_code == 400, early.text
    assert early.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert "tunedModels/still-tuning is CREATING, not ACTIVE" in early.json()["error"]["message"]


def test_the_remote_sdk_downloads_what_the_embedded_one_writes(server, tuned, tmp_path):
    client = RemoteClient(server.url)
    seen = []
    done = ts.export_tuned_model(
        tuned, "gguf", tmp_path / "remote", quantization="Q8_0", client=client,
        progress=lambda what, n, total: seen.append((what, n, total)),
    )  # fmt: skip
    assert done.quantization == "Q8_0" and done.format == "gguf"
    assert sorted(f.name for f in done.files) == ["Modelfile", "exported-Q8_0.gguf"]
    assert seen and seen[-1][1] == seen[-1][2] > 0
    reader = gguf.GGUFReader(done.main_file)
    assert reader.fields["general.file_type"].contents() == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    served = server.home / "exports" / "exported" / "gguf-q8_0" / "exported-Q8_0.gguf"
    assert done.main_file.read_bytes() == served.read_bytes()
    with pytest.raises(ts.InvalidArgument, match="format: 'nope'"):
        ts.export_tuned_model(tuned, "nope", tmp_path / "x", client=client)
    client.close()


def test_the_cli_exports_with_size_and_checksum(server, tuned, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app, ["export", "exported", "--format", "merged", "--out", str(out), "--endpoint",
              server.url],
    )  # fmt: skip
    assert result.exit_code == OK, result.output
    weights = out / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert f"{digest}  {weights}\n" in result.stdout  # sha256sum's format
    assert re.search(r"model\.safetensors  [\d.]+ (KB|MB)\n", result.stderr), result.stderr
    assert "exported tunedModels/exported as merged" in result.stderr
    as_json = runner.invoke(
        app, ["export", "exported", "-f", "adapter", "-o", str(tmp_path / "j"), "--json",
              "--endpoint", server.url],
    )  # fmt: skip
    assert as_json.exit_code == OK, as_json.output
    files = {f["path"].rsplit("/", 1)[-1]: f for f in json.loads(as_json.stdout)["files"]}
    assert files["adapter_model.safetensors"]["sizeBytes"] > 0
    bad = runner.invoke(app, ["export", "exported", "-f", "onnx", "--endpoint", server.url])
    # The CLI names the flag as it was typed.
    assert bad.exit_code == USAGE and "-f: 'onnx'" in bad.stderr, bad.stderr
    gone = runner.invoke(app, ["export", "missing", "--endpoint", server.url])
    assert gone.exit_code == NOT_FOUND
