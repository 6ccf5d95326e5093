"""Limits, configured small through TUNESMITH_* and hit through HTTP: each a clear error."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tunesmith_server import Server, server_env, tunesmith

LIMITS = {
    "TUNESMITH_MAX_REQUEST_BYTES": "4000",
    "TUNESMITH_REQUESTS_PER_MINUTE": "40",
    "TUNESMITH_MAX_JOBS_PER_USER": "2",
    "TUNESMITH_MAX_EXAMPLES": "3",
    "TUNESMITH_MAX_PAGE_SIZE": "2",
}


def body(n: int = 1, output: str = "2") -> dict:
    rows = [{"textInput": str(i), "output": output} for i in range(n)]
    return {
        "baseModel": "models/text-bison-001",
        "tuningTask": {"trainingData": {"examples": {"examples": rows}}},
    }


@pytest.fixture(scope="module")
def limited(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("limits-home")
    env = server_env(home, str(tiny_model_dir), **LIMITS)
    keys = {}
    for name in ("quota", "pages", "flood", "misc", "flooder", "bystander"):
        r = tunesmith("keys", "create", name, env=env)
        assert r.returncode == 0, r.stderr
        keys[name] = r.stdout.strip()
    s = Server(home, env, "--no-worker", "--log-level", "info")
    yield s, keys
    s.stop()


def client(limited, name: str) -> httpx.Client:
    s, keys = limited
    return httpx.Client(
        base_url=s.url + "/v1beta", headers={"x-goog-api-key": keys[name]}, timeout=30
    )


def error(r: httpx.Response, code: int, status: str) -> str:
    assert r.status_code == code, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["status"] == status
    return err["message"]


def test_request_body_size(limited):
    with client(limited, "misc") as c:
        big = body(1, output="x" * 5000)
        msg = error(c.post("/tunedModels", json=big), 400, "INVALID_ARGUMENT")
        assert msg == "Request payload size exceeds the limit: 4000 bytes."

        def chunks():  # no Content-Length: counted as it arrives
            for _ in range(10):
                yield b" " * 1000

        r = c.post("/tunedModels", content=chunks(), headers={"content-type": "application/json"})
        assert "exceeds the limit" in error(r, 400, "INVALID_ARGUMENT")


def test_examples_per_dataset_and_characters_per_text(limited):
    with client(limited, "misc") as c:
        msg = error(c.post("/tunedModels", json=body(4)), 400, "INVALID_ARGUMENT")
        assert "training_data: 4 examples is over the limit of 3" in msg
        msg = error(c.post("/tunedModels", json=body(1, "")), 400, "INVALID_ARGUMENT")
        assert "row 1" in msg and "output" in msg


def test_id_pattern(limited):
    with client(limited, "misc") as c:
        for bad in ("Upper", "a" * 41, "../etc", "-x", "a_b"):
            r = c.post("/tunedModels", params={"tunedModelId": bad}, json=body())
            assert "tuned_model_id" in error(r, 400, "INVALID_ARGUMENT")
        assert c.get("/tunedModels/..%2F..%2Fetc").status_code == 404


def test_concurrent_jobs_per_user(limited):
    with client(limited, "quota") as c:
        ops = [c.post("/tunedModels", json=body()) for _ in range(2)]
        assert all(r.status_code == 200 for r in ops), [r.text for r in ops]
        msg = error(c.post("/tunedModels", json=body()), 429, "RESOURCE_EXHAUSTED")
        assert "TUNESMITH_MAX_JOBS_PER_USER=2" in msg
        # Cancelling one frees a place.
        assert c.post(f"/{ops[0].json()['name']}:cancel").status_code == 200
        assert c.post("/tunedModels", json=body()).status_code == 200


def test_page_size_is_clamped(limited):
    with client(limited, "pages") as c:
        for i in range(3):
            r = c.post("/tunedModels", params={"tunedModelId": f"page-{i}"}, json=body())
            assert r.status_code == 200, r.text
            if i == 0:  # stay under the job quota of 2
                assert c.post(f"/{r.json()['name']}:cancel").status_code == 200
        first = c.get("/tunedModels", params={"pageSize": 1000}).json()
        assert len(first["tunedModels"]) == 2 and first["nextPageToken"]
        rest = c.get("/tunedModels", params={"pageToken": first["nextPageToken"]}).json()
        assert len(rest["tunedModels"]) == 1
        r = c.get("/tunedModels", params={"pageSize": -1})
        assert "page_size" in error(r, 400, "INVALID_ARGUMENT")


def test_requests_per_minute_per_key(limited):
    s, keys = limited
    with client(limited, "flood") as c:
        codes = [c.get("/tunedModels").status_code for _ in range(60)]
        assert codes[:30] == [200] * 30 and 429 in codes
        r = c.get("/tunedModels")
        msg = error(r, 429, "RESOURCE_EXHAUSTED")
        assert "per minute" in msg and int(r.headers["retry-after"]) >= 1
        # Reading an operation (google-generativeai's wait_bar polls it without sleeping)
        # draws on a bucket of its own: still answered with the key's budget spent.
        assert c.get("/tunedModels/x/operations/y").status_code == 404
    openai_headers = {"authorization": f"Bearer {keys['flood']}"}
    with httpx.Client(base_url=s.url + "/openai/v1", headers=openai_headers) as oc:
        # So does polling the same job as OpenAI's client does: answered, budget spent.
        assert oc.get("/fine_tuning/jobs/ftjob-x").status_code == 404
        assert oc.get("/fine_tuning/jobs/ftjob-x/events").status_code == 404
    with client(limited, "misc") as other:  # other keys are not affected
        assert other.get("/tunedModels").status_code == 200
    assert httpx.get(f"{s.url}/healthz").status_code == 200


def test_a_flooding_key_gets_429s_while_another_key_is_answered(limited):
    s, keys = limited

    def client_of(name: str) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=200)
        headers = {"x-goog-api-key": keys[name]}
        return httpx.AsyncClient(
            base_url=s.url + "/v1beta", headers=headers, timeout=60, limits=limits
        )

    async def main():
        refused = asyncio.Event()

        async def flood_one(c: httpx.AsyncClient, path: str) -> int:
            r = await c.get(path)
            if r.status_code == 429:
                refused.set()
            return r.status_code

        async with client_of("flooder") as f, client_of("bystander") as b:
            paths = ["/tunedModels"] * 100 + ["/tunedModels/x/operations/y"] * 100
            flood = asyncio.gather(*(flood_one(f, path) for path in paths))
            # The flood is under way (a first 429): the other key calls meanwhile.
            await asyncio.wait_for(refused.wait(), timeout=120)
            meanwhile = [
                (await b.get("/tunedModels")).status_code,
                (await b.get("/tunedModels/x/operations/y")).status_code,
                (await b.get("/models")).status_code,
            ]
            return await flood, meanwhile

    flood, meanwhile = asyncio.run(main())
    calls, reads = flood[:100], flood[100:]
    assert set(calls) == {200, 429}  # 40 a minute for this key, then refused
    assert set(reads) == {404, 429}  # a few paced, the pile-up refused
    assert meanwhile == [200, 404, 200]


def test_keys_never_reach_the_log(limited):
    s, keys = limited
    httpx.get(f"{s.url}/v1beta/tunedModels", params={"key": keys["misc"]})
    log = s.log()
    assert "key=REDACTED" in log
    assert all(secret not in log for secret in keys.values())
