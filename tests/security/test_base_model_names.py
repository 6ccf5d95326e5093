"""The operator chooses which base models a server loads; the caller on their own machine names
anything on it.

Over HTTP a base model name is one the server offers (registered, an alias, or configured with
``--base-model`` / ``TUNESMITH_BASE_MODELS``) or it is refused with one answer, whether or not
the path or repository it names exists. Through the embedded SDK and the CLI on one's own
machine the same names are the user's own folders, files and hub ids.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

import tunesmith as ts
from tunesmith_server import Server, server_env, tunesmith

EXAMPLES = [{"textInput": str(i), "output": str(i + 1)} for i in range(4)]
LISTED_HUB_ID = "HuggingFaceTB/SmolLM2-135M"
REFUSAL = (
    "source_model: base model '{name}' is not offered by this server; the server's list of "
    "models (GET /v1beta/models) names the ones it offers"
)


def body(base_model: str) -> dict:
    return {
        "baseModel": base_model,
        "tuningTask": {
            "hyperparameters": {"epochCount": 1, "batchSize": 2},
            "trainingData": {"examples": {"examples": EXAMPLES}},
        },
    }


@pytest.fixture(scope="module")
def disk(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """Things on the server's disk that are models, but not ones its operator offers."""
    root = tmp_path_factory.mktemp("server-disk")
    other = shutil.copytree(tiny_model_dir, root / "other-model")
    link = root / "link-to-the-offered-model"
    link.symlink_to(tiny_model_dir, target_is_directory=True)
    gguf = root / "weights.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))
    return {"root": root, "other": other, "link": link, "gguf": gguf}


@pytest.fixture(scope="module")
def offered_server(tmp_path_factory, tiny_model_dir, disk):
    """A server whose operator offers the tiny model (a flag) and one hub id (the
    environment); HF_HUB_OFFLINE, so the listed id is queued without asking the hub."""
    home = tmp_path_factory.mktemp("offered-home")
    # Weights under TUNESMITH_HOME that nobody offered (another user's full tuning, say).
    shutil.copytree(tiny_model_dir, home / "adapters" / "somebodys-full-tuning")
    env = server_env(
        home,
        str(tiny_model_dir),
        TUNESMITH_BASE_MODELS=f"smol={LISTED_HUB_ID}",
        HF_HUB_OFFLINE="1",
    )
    server = Server(home, env, "--no-worker", "--base-model", f"tiny={tiny_model_dir}")
    yield server
    server.stop()


def refused_names(disk: dict[str, Path], home: Path) -> list[str]:
    """Each pair: one that exists (and mostly holds a model) and one that does not."""
    other, root = disk["other"], disk["root"]
    relative = os.path.relpath(other, os.getcwd())  # from the server's working directory
    assert ".." in relative
    return [
        str(other),
        str(root / "no-such-model"),
        relative,
        os.path.relpath(root / "no-such-model", os.getcwd()),
        f"models/{other}",
        str(home / "adapters" / "somebodys-full-tuning"),
        str(home / "adapters" / "nobodys-full-tuning"),
        str(home),
        f"file://{other}",
        f"file://{root / 'no-such-model'}",
        str(disk["link"]),  # a symlink to the very folder the operator offers
        str(disk["gguf"]),
        "HuggingFaceTB/SmolLM2-360M",  # a real repository, not listed
        "nobody-at-all/no-such-repository-here",
        "~",
    ]


def test_names_the_operator_did_not_offer_get_one_answer(offered_server, disk):
    names = refused_names(disk, offered_server.home)
    with httpx.Client(base_url=offered_server.url, timeout=60) as http:
        for name in names:
            r = http.post("/v1beta/tunedModels", json=body(name))
            assert r.status_code == 400, (name, r.text)
            error = r.json()["error"]
            assert error["status"] == "INVALID_ARGUMENT"
            assert error["message"] == REFUSAL.format(name=name)
        listed = http.get("/v1beta/tunedModels").json().get("tunedModels", [])
        assert listed == []  # nothing was created


def test_what_the_operator_offers_is_listed_and_accepted(offered_server, tiny_model_dir):
    with httpx.Client(base_url=offered_server.url, timeout=60) as http:
        models = {m["name"]: m for m in http.get("/v1beta/models").json()["models"]}
        assert {"models/tiny", "models/smol", "models/smollm2-135m-instruct"} <= set(models)
        assert str(tiny_model_dir) not in str(models)  # the operator's folder stays private
        assert LISTED_HUB_ID in models["models/smol"]["description"]
        accepted = {
            "models/tiny": "models/tiny",
            "tiny": "models/tiny",
            str(tiny_model_dir): "models/tiny",  # the folder exactly as the operator wrote it
            "models/text-bison-001": "models/tiny",  # an alias of the default
            LISTED_HUB_ID: "models/smol",
            "models/smol": "models/smol",
        }
        for i, (name, stored) in enumerate(accepted.items()):
            r = http.post(f"/v1beta/tunedModels?tunedModelId=offered-{i}", json=body(name))
            assert r.status_code == 200, (name, r.text)
            model = http.get(f"/v1beta/tunedModels/offered-{i}").json()
            assert model["baseModel"] == stored


def test_generation_and_model_lookups_follow_the_same_rule(offered_server):
    with httpx.Client(base_url=offered_server.url, timeout=60) as http:
        answers = []
        for name in ("~", "no-such-name", "tunesmith.db"):
            got = http.get(f"/v1beta/models/{name}")
            gen = http.post(
                f"/v1beta/models/{name}:generateContent",
                json={"contents": [{"parts": [{"text": "hi"}]}]},
            )
            for r in (got, gen):
                message = r.json()["error"]["message"].replace(name, "NAME")
                answers.append((r.status_code, message))
        assert len(set(answers)) == 1 and answers[0][0] == 404, answers
        assert http.get("/v1beta/models/tiny").json()["name"] == "models/tiny"


def test_the_remote_sdk_and_cli_get_the_servers_answer(offered_server, disk, home, tmp_path):
    name = str(disk["other"])
    ts.configure(api_endpoint=offered_server.url, api_key="unused-on-an-open-server")
    try:
        with pytest.raises(ts.InvalidArgument) as refused:
            ts.create_tuned_model(name, [("1", "2"), ("3", "4")], epoch_count=1)
    finally:
        ts.configure()
    assert REFUSAL.format(name=name) in str(refused.value)

    data = tmp_path / "numbers.csv"
    data.write_text("text_input,output\n1,2\n3,4\n")
    env = server_env(tmp_path / "client-home", TUNESMITH_API_ENDPOINT=offered_server.url)
    r = tunesmith("tune", str(data), "--base-model", str(disk["link"]), "--detach", env=env)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "is not offered by this server" in r.stderr.replace("\n", " ")


# -- on one's own machine ------------------------------------------------------------------


def test_the_embedded_sdk_names_the_users_own_folders_and_hub_ids(
    home, tiny_model_dir, disk, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing to ask the hub here; runs fail later
    mine = shutil.copytree(tiny_model_dir, home / "my-models" / "tiny-copy")  # in TUNESMITH_HOME
    relative = os.path.relpath(disk["other"], os.getcwd())
    names = [str(disk["other"]), relative, str(mine), str(disk["link"]), "someorg/some-llm"]
    client = ts.EmbeddedClient()
    for i, name in enumerate(names):
        op = ts.create_tuned_model(
            name, [("1", "2"), ("3", "4")], id=f"mine-{i}", epoch_count=1, client=client
        )
        assert ts.get_tuned_model(op.metadata.tuned_model, client=client).base_model == name
    # Not a folder here either (file:// URLs are not base model names anywhere).
    local_refusal = (ts.InvalidArgument, ts.NotFound)
    with pytest.raises(local_refusal, match="not a registered model, a local model folder"):
        ts.create_tuned_model(f"file://{disk['other']}", [("1", "2")], client=client)


def test_the_cli_on_ones_own_machine_names_folders_freely(home, disk, tmp_path):
    from typer.testing import CliRunner

    from tunesmith.cli import app

    data = tmp_path / "numbers.csv"
    data.write_text("text_input,output\n1,2\n3,4\n")
    args = ["tune", str(data), "--base-model", str(disk["link"]), "--id", "from-a-link", "-d"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert ts.get_tuned_model("from-a-link").base_model == str(disk["link"])
