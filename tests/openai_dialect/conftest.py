"""The OpenAI dialect in-process: the app over a home with two keys (alice, bob) and one
tuned model of alice's on the tiny model, driven by the real ``openai`` client through
Starlette's in-process transport (no socket; one test module uses a real server)."""

from __future__ import annotations

import pytest
from openai_helpers import BASE, make_settings


@pytest.fixture(scope="package")
def oai_home(tmp_path_factory, tiny_model_dir):
    """A home with keys for alice, bob and carol, and alice's tuned model ``numbers``
    (ACTIVE), which carol may use (READER)."""
    from tunesmith.jobs.worker import Worker
    from tunesmith.records.permissions import NewPermission
    from tunesmith.service import CreateTunedModelRequest, Service
    from tunesmith.service.access import Caller
    from tunesmith.store.keys import KeyStore
    from tunesmith.types import TuningExample

    home = tmp_path_factory.mktemp("openai-home")
    settings = make_settings(home, tiny_model_dir)
    service = Service(settings, offered_base_models_only=True)
    keys = {
        user: KeyStore(service.store).create(f"{user}-key", user)[1]
        for user in ("alice", "bob", "carol")
    }
    rows = [TuningExample(f"{i}", f"{i + 1}") for i in range(1, 9)]
    req = CreateTunedModelRequest(
        BASE, rows, id="numbers", display_name="numbers", epoch_count=1, batch_size=4
    )
    service.tuning.create_tuned_model(req, Caller("alice", frozenset()))
    # carol may read (use) alice's model, not delete it
    service.permissions.create_permission(
        "tunedModels/numbers",
        NewPermission("USER", "carol", "READER"),
        Caller("alice", frozenset()),
    )
    worker = Worker(settings, service.store)
    assert worker.run_once()
    assert service.tuning.get_tuned_model("tunedModels/numbers").state.name == "ACTIVE"
    service.close()
    return home, keys


@pytest.fixture(scope="package")
def oai_app(oai_home, tiny_model_dir):
    from fastapi.testclient import TestClient

    from tunesmith.api import create_app

    home, _keys = oai_home
    app = create_app(make_settings(home, tiny_model_dir), worker=False)
    with TestClient(app) as http:
        yield app, http


@pytest.fixture(scope="package")
def keys(oai_home) -> dict[str, str]:
    return oai_home[1]


@pytest.fixture(scope="package")
def client_for(oai_app):
    """``client_for(key)``: the real ``openai`` client on the in-process app."""
    from openai import OpenAI

    _app, http = oai_app

    def make(key: str, **kw) -> OpenAI:
        return OpenAI(base_url="http://testserver/openai/v1", api_key=key, http_client=http, **kw)

    return make


@pytest.fixture(scope="package")
def alice(client_for, keys):
    return client_for(keys["alice"])


@pytest.fixture(scope="package")
def bob(client_for, keys):
    return client_for(keys["bob"])


@pytest.fixture(scope="package")
def carol(client_for, keys):
    return client_for(keys["carol"])
