"""Hub downloads on a server: only ids the operator listed, sized before they start, and no
code from a repository ever runs. No network here: the hub is a fake client, or
huggingface_hub's own ``HfApi.model_info`` monkeypatched (the code around it is the real one).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from huggingface_hub.hf_api import ModelInfo
from typer.testing import CliRunner

from tunesmith.api import create_app
from tunesmith.service import CreateTunedModelRequest, Service
from tunesmith.settings import get_settings
from tunesmith.types import TuningExample

GIB = 2**30
REPOS = {
    "org/small": {"model.safetensors": 300 * 2**20, "config.json": 700, "tokenizer.json": 9000},
    "org/big": {
        "model-00001-of-00002.safetensors": GIB,
        "model-00002-of-00002.safetensors": GIB // 2,
        "model.safetensors.index.json": 30_000,
        "config.json": 700,
        "onnx/model.safetensors": 5 * GIB,  # a sub-folder: never fetched, not counted
        "pytorch_model.bin": 5 * GIB,  # another format: never fetched, not counted
    },
    "org/pickled": {"pytorch_model.bin": 2**20, "config.json": 700},
}


class FakeHub:
    """The one ``HfApi`` method tunesmith calls, answering from REPOS and recording calls."""

    def __init__(self):
        self.asked: list[tuple[str, bool]] = []

    def model_info(self, repo_id, *, files_metadata=False, **_):
        self.asked.append((repo_id, files_metadata))
        if repo_id not in REPOS:
            raise OSError(f"404 Client Error: Repository Not Found for url: .../{repo_id}")
        files = REPOS[repo_id].items()
        return ModelInfo(id=repo_id, siblings=[{"rfilename": f, "size": n} for f, n in files])


@pytest.fixture()
def hub_online(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture()
def offered_env(hub_online, monkeypatch):
    """The operator's settings: three hub ids offered, downloads up to 1 GiB."""
    monkeypatch.setenv("TUNESMITH_BASE_MODELS", "small=org/small,big=org/big\npickled=org/pickled")
    monkeypatch.setenv("TUNESMITH_MAX_BASE_MODEL_BYTES", "1GiB")
    return monkeypatch


def server_settings(home: Path):
    return get_settings(home=home)


def create(http: TestClient, base_model: str):
    examples = [{"textInput": "1", "output": "2"}, {"textInput": "3", "output": "4"}]
    return http.post(
        "/v1beta/tunedModels",
        json={
            "baseModel": base_model,
            "tuningTask": {"trainingData": {"examples": {"examples": examples}}},
        },
    )


def test_listed_ids_are_sized_before_anything_is_downloaded(tmp_path, offered_env):
    hub = FakeHub()
    app = create_app(server_settings(tmp_path / "home"), worker=False, hub_api=hub)
    with TestClient(app) as http:
        assert create(http, "org/small").status_code == 200
        assert create(http, "models/small").status_code == 200
        assert hub.asked == [("org/small", True)] * 2  # sizes asked for, nothing fetched

        big = create(http, "models/big")
        assert big.status_code == 400
        message = big.json()["error"]["message"]
        # Two shards, their index and the config (the sub-folder and the .bin are never fetched).
        assert "org/big would fetch 1.5 GiB in 4 files" in message
        assert "over the limit of 1.0 GiB (TUNESMITH_MAX_BASE_MODEL_BYTES)" in message

        pickled = create(http, "org/pickled")
        assert pickled.status_code == 400
        assert "has no .safetensors weights" in pickled.json()["error"]["message"]

        hub.asked.clear()
        unlisted = create(http, "org/unlisted")
        assert unlisted.status_code == 400
        assert "is not offered by this server" in unlisted.json()["error"]["message"]
        assert hub.asked == []  # an unlisted id never reaches the hub, not even to ask
    assert not (tmp_path / "home" / "base-models").exists()  # nothing was downloaded


def test_the_limit_is_a_setting_and_zero_turns_it_off(tmp_path, offered_env):
    hub = FakeHub()
    offered_env.setenv("TUNESMITH_MAX_BASE_MODEL_BYTES", "0")
    settings = server_settings(tmp_path / "home")
    with TestClient(create_app(settings, worker=False, hub_api=hub)) as http:
        assert create(http, "models/big").status_code == 200
    assert hub.asked == []


def test_huggingface_hubs_own_client_is_the_one_asked(tmp_path, offered_env, monkeypatch):
    from huggingface_hub import HfApi

    fake = FakeHub()
    monkeypatch.setattr(
        HfApi, "model_info", lambda self, repo_id, **kw: fake.model_info(repo_id, **kw)
    )
    service = Service(server_settings(tmp_path / "home"), offered_base_models_only=True)
    try:
        rows = [TuningExample("1", "2")]
        op = service.tuning.create_tuned_model(CreateTunedModelRequest("org/small", rows))
        assert service.tuning.get_tuned_model(op.name.split("/operations")[0]).base_model == (
            "models/small"
        )
        assert fake.asked == [("org/small", True)]

        def unreachable(self, repo_id, **kw):
            raise ConnectionError("Name or service not known")

        monkeypatch.setattr(HfApi, "model_info", unreachable)
        with pytest.raises(Exception, match="cannot ask the Hugging Face hub about org/small"):
            service.tuning.create_tuned_model(CreateTunedModelRequest("org/small", rows))
    finally:
        service.close()


def test_no_code_from_a_repository_runs(tmp_path, monkeypatch):
    """Loading a hub model never passes trust_remote_code (the source, and a real call)."""
    source = Path(__file__).resolve().parents[2] / "src" / "tunesmith"
    setting = re.compile(r"trust_remote_code\s*=\s*(?!False\b)")
    hits = [
        f"{p.relative_to(source)}:{n}"
        for p in source.rglob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if setting.search(line)
    ]
    assert hits == []

    import transformers

    from tunesmith.engine import base_models

    calls = []

    def record(cls, location, *args, **kwargs):
        calls.append(kwargs)
        raise OSError(f"{location} is not reachable here")

    for cls in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        monkeypatch.setattr(cls, "from_pretrained", classmethod(record))
    spec = base_models.offered_spec("small", "org/small")
    with pytest.raises(Exception, match="org/small"):
        base_models.materialize(spec, tmp_path / "base-models")
    assert calls and all(not kw.get("trust_remote_code") for kw in calls)


@pytest.mark.parametrize(
    "flag, says",
    [
        ("no-equals-sign", "is not NAME=FOLDER_FILE_OR_HUB_ID"),
        ("text-bison-001=org/small", "already a registered model or alias"),
        ("Bad Name=org/small", "is not a model name"),
        ("gone=/no/such/folder", "gone=/no/such/folder: base model '/no/such/folder' not found"),
    ],
)
def test_serve_refuses_a_bad_offer_at_startup(home, flag, says):
    from tunesmith.cli import app

    result = CliRunner().invoke(app, ["serve", "--base-model", flag])
    assert result.exit_code == 2
    assert says in result.output and "Traceback" not in result.output
