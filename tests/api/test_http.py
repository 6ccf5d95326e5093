"""The HTTP contract, spoken with plain HTTP against a real server (tiny base model)."""

from __future__ import annotations

import json
import uuid

from tunesmith_server import wait_done

EXAMPLES = [{"textInput": str(i), "output": str(i + 1)} for i in range(6)]


def _uid(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _create(http, model_id=None, examples=EXAMPLES, version="v1beta", **hp) -> dict:
    body = {
        "baseModel": "models/text-bison-001",
        "displayName": "numbers",
        "tuningTask": {
            "hyperparameters": {"epochCount": 1, "batchSize": 2, **hp},
            "trainingData": {"examples": {"examples": examples}},
        },
    }
    params = {"tunedModelId": model_id} if model_id else None
    r = http.post(f"/{version}/tunedModels", json=body, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _error(r, code: int, status: str) -> str:
    assert r.status_code == code, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["status"] == status
    return err["message"]


def test_health_and_openapi_describe_the_routes(http):
    assert http.get("/healthz").json()["status"] == "ok"
    paths = http.get("/openapi.json").json()["paths"]
    for version in ("v1beta", "v1beta3", "v1"):
        assert f"/{version}/tunedModels" in paths
        assert f"/{version}/tunedModels/{{model_id}}:generateContent" in paths
        assert f"/{version}/tunedModels/{{model_id}}/operations/{{operation_id}}:cancel" in paths
    create = paths["/v1beta/tunedModels"]["post"]
    assert "tuningTask" in json.dumps(create["requestBody"])


def test_create_runs_to_an_active_model_without_fields_the_old_sdk_chokes_on(http):
    model_id = _uid("created")
    op = _create(http, model_id, learningRate=0.001)
    assert op["name"].startswith(f"tunedModels/{model_id}/operations/")
    meta = op["metadata"]
    assert meta["@type"].endswith("v1beta.CreateTunedModelMetadata")
    assert meta["totalSteps"] == 3 and meta["tunedModel"] == f"tunedModels/{model_id}"

    done = wait_done(http, op["name"])
    assert "error" not in done, done
    assert done["response"]["@type"].endswith("v1beta.TunedModel")
    assert done["metadata"]["completedSteps"] == 3
    assert done["metadata"]["completedPercent"] == 100
    model = http.get(f"/v1beta/tunedModels/{model_id}").json()
    assert model["state"] == "ACTIVE"
    assert [s["step"] for s in model["tuningTask"]["snapshots"]] == [1, 2, 3]
    assert model["createTime"].endswith("Z")
    text = json.dumps(model) + json.dumps(done)
    assert "trainingData" not in text and "learningRateMultiplier" not in text

    ops = http.get(f"/v1beta/tunedModels/{model_id}/operations").json()["operations"]
    assert [o["name"] for o in ops] == [op["name"]]


def test_without_an_id_the_id_comes_from_the_display_name(http):
    op = _create(http)
    assert op["metadata"]["tunedModel"].startswith("tunedModels/numbers-")


def test_a_duplicate_id_is_already_exists(http):
    model_id = _uid("dup")
    _create(http, model_id)
    body = {
        "baseModel": "models/text-bison-001",
        "tuningTask": {"trainingData": {"examples": {"examples": EXAMPLES}}},
    }
    r = http.post("/v1beta/tunedModels", params={"tunedModelId": model_id}, json=body)
    assert model_id in _error(r, 409, "ALREADY_EXISTS")


def test_bad_input_is_400_naming_the_field_or_row(http):
    rows = EXAMPLES[:2] + [{"textInput": "x"}]
    body = {
        "baseModel": "models/text-bison-001",
        "tuningTask": {"trainingData": {"examples": {"examples": rows}}},
    }
    msg = _error(http.post("/v1beta/tunedModels", json=body), 400, "INVALID_ARGUMENT")
    assert "row 3" in msg and "output" in msg

    body["tuningTask"] = {
        "hyperparameters": {"batchSize": "many"},
        "trainingData": {"examples": {"examples": EXAMPLES}},
    }
    msg = _error(http.post("/v1beta/tunedModels", json=body), 400, "INVALID_ARGUMENT")
    assert "batch_size" in msg

    r = http.post("/v1beta/tunedModels", json={**body, "epochs": 3})
    assert "epochs" in _error(r, 400, "INVALID_ARGUMENT")
    r = http.post("/v1beta/tunedModels", params={"tunedModelId": "Bad_Id"}, json=body)
    assert "tuned_model_id" in _error(r, 400, "INVALID_ARGUMENT")
    r = http.post(
        "/v1beta/tunedModels",
        content=b'{"baseModel": ',
        headers={"content-type": "application/json"},
    )
    assert "Invalid JSON" in _error(r, 400, "INVALID_ARGUMENT")
    r = http.post("/v1beta/tunedModels", content=b"[1, 2]")
    _error(r, 400, "INVALID_ARGUMENT")
    assert "pageSize" in _error(
        http.get("/v1beta/tunedModels?pageSize=lots"), 400, "INVALID_ARGUMENT"
    )
    r = http.get("/v1beta/tunedModels?pageToken=forged")
    assert "page_token" in _error(r, 400, "INVALID_ARGUMENT")
    r = http.post("/v1beta/models/text-bison-001:generateContent", json={"contents": []})
    assert "contents" in _error(r, 400, "INVALID_ARGUMENT")
    r = http.post(
        "/v1beta/models/text-bison-001:generateText",
        json={"prompt": {"text": "1"}, "temperature": 9},
    )
    assert "temperature" in _error(r, 400, "INVALID_ARGUMENT")


def test_missing_things_are_404(http):
    _error(http.get("/v1beta/tunedModels/no-such-model"), 404, "NOT_FOUND")
    _error(http.get("/v1beta/tunedModels/no-such-model/operations/x"), 404, "NOT_FOUND")
    _error(
        http.post("/v1beta/tunedModels/no-such-model:generateText", json={"prompt": {"text": "1"}}),
        404,
        "NOT_FOUND",
    )
    _error(http.get("/v1beta/models/no-such-base"), 404, "NOT_FOUND")
    _error(http.get("/v1beta/nothing-here"), 404, "NOT_FOUND")


def test_list_pages_and_filters(http):
    tag = uuid.uuid4().hex[:6]
    for i in range(3):
        body = {
            "baseModel": "models/text-bison-001",
            "displayName": f"pager {tag} {i}",
            "tuningTask": {"trainingData": {"examples": {"examples": EXAMPLES}}},
        }
        assert http.post("/v1beta/tunedModels", json=body).status_code == 200
    first = http.get("/v1beta/tunedModels", params={"pageSize": 2, "filter": tag}).json()
    assert len(first["tunedModels"]) == 2 and first["nextPageToken"]
    second = http.get(
        "/v1beta/tunedModels",
        params={"page_size": 2, "page_token": first["nextPageToken"], "filter": tag},
    ).json()
    assert len(second["tunedModels"]) == 1 and "nextPageToken" not in second
    names = {m["displayName"] for m in first["tunedModels"] + second["tunedModels"]}
    assert names == {f"pager {tag} {i}" for i in range(3)}


def test_patch_with_camel_snake_and_no_mask(http):
    model_id = _uid("patched")
    wait_done(http, _create(http, model_id)["name"])
    url = f"/v1beta/tunedModels/{model_id}"
    whole = http.get(url).json()
    # The old SDK sends the whole model back; only the masked field may change.
    changed = {**whole, "displayName": "renamed", "description": "ignored", "state": 2}
    r = http.patch(url, params={"updateMask": "displayName"}, json=changed)
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "renamed" and r.json()["description"] == ""
    r = http.patch(
        url, params={"update_mask": "description,top_k"}, json={"description": "d", "topK": 7}
    )
    assert r.json()["description"] == "d" and r.json()["topK"] == 7
    r = http.patch(url, json={"temperature": 0.2})
    assert r.json()["temperature"] == 0.2 and r.json()["displayName"] == "renamed"
    r = http.patch(url, params={"updateMask": "baseModel"}, json={"baseModel": "x"})
    assert "base_model" in _error(r, 400, "INVALID_ARGUMENT")
    assert http.get(url).json()["baseModel"] == whole["baseModel"]


def test_delete(http):
    model_id = _uid("deleted")
    wait_done(http, _create(http, model_id)["name"])
    assert http.delete(f"/v1beta/tunedModels/{model_id}").json() == {}
    _error(http.get(f"/v1beta/tunedModels/{model_id}"), 404, "NOT_FOUND")


def test_generation_routes_on_tuned_and_base_models(http):
    model_id = _uid("gen")
    wait_done(http, _create(http, model_id)["name"])
    for model in (f"tunedModels/{model_id}", "models/text-bison-001"):
        r = http.post(
            f"/v1beta/{model}:generateText",
            json={"prompt": {"text": "3"}, "temperature": 0, "maxOutputTokens": 4},
        )
        assert r.status_code == 200, r.text
        assert isinstance(r.json()["candidates"][0]["output"], str)
        body = {
            "contents": [{"role": "user", "parts": [{"text": "3"}]}],
            "generationConfig": {"temperature": 0, "maxOutputTokens": 4},
        }
        full = http.post(f"/v1beta/{model}:generateContent", json=body).json()
        text = full["candidates"][0]["content"]["parts"][0]["text"]
        assert full["usageMetadata"]["promptTokenCount"] > 0
        chunks = http.post(f"/v1/{model}:streamGenerateContent", json=body).json()
        assert all("text" in c["candidates"][0]["content"]["parts"][0] for c in chunks)
        assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == text
        assert chunks[-1]["candidates"][0]["finishReason"] in ("STOP", "MAX_TOKENS")
        sse = http.post(f"/v1beta/{model}:streamGenerateContent?alt=sse", json=body)
        assert sse.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line[5:]) for line in sse.text.splitlines() if line.startswith("data:")
        ]
        assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == text
        n = http.post(f"/v1beta/{model}:countTokens", json={"contents": body["contents"]}).json()
        assert n["totalTokens"] > 0
        n2 = http.post(f"/v1beta/{model}:countTextTokens", json={"prompt": {"text": "3"}}).json()
        assert n2["tokenCount"] == n["totalTokens"]


def test_generation_config_seed_makes_sampling_reproducible(http):
    """Gemini's ``generationConfig.seed``: the same seed, the same sampled answers; a seed
    that is no whole number is a 400 naming it."""

    def sample(seed):
        config = {"temperature": 1.5, "maxOutputTokens": 12, "candidateCount": 1, "seed": seed}
        body = {"contents": [{"parts": [{"text": "one two"}]}], "generationConfig": config}
        r = http.post("/v1beta/models/text-bison-001:generateContent", json=body)
        assert r.status_code == 200, r.text
        return r.json()["candidates"][0]["content"]["parts"][0]["text"]

    assert len({sample(7) for _ in range(3)}) == 1
    assert len({sample(seed) for seed in range(6)}) > 1
    body = {"contents": [{"parts": [{"text": "1"}]}], "generationConfig": {"seed": "x"}}
    r = http.post("/v1beta/models/text-bison-001:generateContent", json=body)
    assert "seed" in _error(r, 400, "INVALID_ARGUMENT")
