"""The OpenAI dialect's scaffolding and ``/models`` with the real ``openai`` client: the same
keys and owners as Google's routes, OpenAI's error envelope and status codes, model ids in
every form a caller sends them."""

from __future__ import annotations

import openai
import pytest

FT_NUMBERS = "ft:tiny:alice:numbers:ftjob-numbers"


def test_models_list_shows_bases_and_the_callers_tuned_models(alice, bob):
    ids = [m.id for m in alice.models.list()]
    assert "tiny" in ids and FT_NUMBERS in ids
    assert FT_NUMBERS not in [m.id for m in bob.models.list()]  # alice's, not shared


@pytest.mark.parametrize("name", [FT_NUMBERS, "tunedModels/numbers", "ft:x:y:z:ftjob-numbers"])
def test_retrieve_a_tuned_model_by_any_of_its_names(alice, name):
    m = alice.models.retrieve(name)  # the client sends tunedModels%2Fnumbers, colons raw
    assert (m.id, m.owned_by, m.object) == (FT_NUMBERS, "alice", "model")
    assert m.created > 0


def test_retrieve_a_base_model(alice):
    assert alice.models.retrieve("tiny").id == "tiny"
    assert alice.models.retrieve("models/tiny").id == "tiny"


def test_another_key_gets_404_in_openais_envelope(bob):
    for call in (bob.models.retrieve, bob.models.delete):
        with pytest.raises(openai.NotFoundError) as e:
            call(FT_NUMBERS)
        body = e.value.body
        assert set(body) == {"message", "type", "param", "code"}  # the client unwraps "error"
        assert body["type"] == "invalid_request_error" and body["code"] == "not_found"


def test_unknown_models_are_404(alice):
    for name in (
        "gpt-4o-mini",
        "ft:a:b:c:ftjob-nothere",
        "tunedModels/BAD!",
        FT_NUMBERS + ":ckpt-step-9",
    ):
        with pytest.raises(openai.NotFoundError):
            alice.models.retrieve(name)


def test_a_wrong_key_is_401_authentication_error(client_for):
    client = client_for("ts-not-a-key", max_retries=2)
    with pytest.raises(openai.AuthenticationError) as e:
        client.models.list()
    assert e.value.status_code == 401 and e.value.body["code"] == "invalid_api_key"


def test_base_models_cannot_be_deleted(alice):
    with pytest.raises(openai.BadRequestError) as e:
        alice.models.delete("tiny")
    assert e.value.body["param"] == "model"


def test_unknown_route_and_method_in_openais_envelope(oai_app, keys):
    _app, http = oai_app
    auth = {"Authorization": f"Bearer {keys['alice']}"}
    r = http.get("/openai/v1/no-such-thing", headers=auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
    assert r.headers["x-should-retry"] == "false"
    r = http.put("/openai/v1/models", headers=auth)
    assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"


def test_google_routes_keep_googles_envelope(oai_app):
    _app, http = oai_app
    r = http.get("/v1beta/models", headers={"Authorization": "Bearer ts-not-a-key"})
    assert r.status_code == 401
    assert r.json() == {
        "error": {
            "code": 401,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "UNAUTHENTICATED",
        }
    }
    assert "x-should-retry" not in r.headers


def test_a_reader_uses_a_shared_model_but_cannot_delete_it(carol):
    assert FT_NUMBERS in [m.id for m in carol.models.list()]
    r = carol.chat.completions.create(
        model=FT_NUMBERS, messages=[{"role": "user", "content": "1"}], max_tokens=4
    )
    assert r.choices[0].message.content is not None
    with pytest.raises(openai.PermissionDeniedError) as e:
        carol.models.delete(FT_NUMBERS)
    assert e.value.body["code"] == "permission_denied"
    assert carol.models.retrieve(FT_NUMBERS).id == FT_NUMBERS  # still there
