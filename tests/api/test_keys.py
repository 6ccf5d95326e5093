"""API keys: created by the CLI, required once any exists, and each model private to its key."""

from __future__ import annotations

import httpx
import pytest

from tunesmith_server import Server, server_env, tunesmith

BODY = {
    "baseModel": "models/text-bison-001",
    "tuningTask": {"trainingData": {"examples": {"examples": [{"textInput": "1", "output": "2"}]}}},
}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("keyed-home")
    env = server_env(home, str(tiny_model_dir))
    created = {name: tunesmith("keys", "create", name, env=env) for name in ("alice", "bob")}
    for result in created.values():
        assert result.returncode == 0, result.stderr
    keys = {name: r.stdout.strip() for name, r in created.items()}
    s = Server(home, env, "--no-worker")
    yield s, keys
    s.stop()


def test_keys_are_listed_without_the_secret(keyed):
    server, keys = keyed
    out = tunesmith("keys", "list", env=server.env)
    assert "alice" in out.stdout and "bob" in out.stdout
    assert keys["alice"] not in out.stdout
    again = tunesmith("keys", "create", "alice", env=server.env)
    assert again.returncode != 0 and "already exists" in again.stderr


def test_a_key_is_required_and_must_be_valid(keyed):
    server, _ = keyed
    r = httpx.get(f"{server.url}/v1beta/tunedModels")
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
    r = httpx.get(f"{server.url}/v1beta/tunedModels", headers={"x-goog-api-key": "ts-wrong"})
    assert r.status_code == 401 and "not valid" in r.json()["error"]["message"]


def test_models_belong_to_the_key_that_created_them(keyed):
    server, keys = keyed
    alice = {"x-goog-api-key": keys["alice"]}
    r = httpx.post(
        f"{server.url}/v1beta/tunedModels",
        params={"tunedModelId": "alices"},
        json=BODY,
        headers=alice,
    )
    assert r.status_code == 200, r.text
    op_name = r.json()["name"]
    # The same key by ?key= and by Authorization: Bearer.
    assert (
        httpx.get(
            f"{server.url}/v1beta/tunedModels/alices", params={"key": keys["alice"]}
        ).status_code
        == 200
    )
    bearer = {"Authorization": f"Bearer {keys['alice']}"}
    assert httpx.get(f"{server.url}/v1beta/{op_name}", headers=bearer).status_code == 200

    bob = {"x-goog-api-key": keys["bob"]}
    for method, path in [
        ("GET", "/v1beta/tunedModels/alices"),
        ("DELETE", "/v1beta/tunedModels/alices"),
        ("PATCH", "/v1beta/tunedModels/alices"),
        ("GET", f"/v1beta/{op_name}"),
        ("POST", f"/v1beta/{op_name}:cancel"),
        ("POST", "/v1beta/tunedModels/alices:generateText"),
    ]:
        r = httpx.request(
            method, f"{server.url}{path}", headers=bob, json={"prompt": {"text": "1"}}
        )
        assert r.status_code == 404, (method, path, r.text)
    listed = httpx.get(f"{server.url}/v1beta/tunedModels", headers=bob).json()
    assert listed.get("tunedModels", []) == []
    assert (
        httpx.get(f"{server.url}/v1beta/tunedModels/alices", headers=alice).json()["state"]
        == "CREATING"
    )


def test_a_revoked_key_stops_working(keyed):
    server, keys = keyed
    assert tunesmith("keys", "revoke", "bob", env=server.env).returncode == 0
    r = httpx.get(f"{server.url}/v1beta/tunedModels", headers={"x-goog-api-key": keys["bob"]})
    assert r.status_code == 401


def test_an_open_server_refuses_a_public_address(tmp_path):
    env = server_env(tmp_path / "open-home")
    r = tunesmith("serve", "--host", "0.0.0.0", "--port", "1", env=env)
    assert r.returncode == 2
    assert "without API keys" in r.stderr and "tunesmith keys create" in r.stderr
