"""Permissions through HTTP against a real server: every role against every route.

alice owns the models; bob is a READER (a USER grant), carol a WRITER (through a GROUP grant
to her key's group), dave has nothing. A caller without access gets 404 (the model's existence
is private), a caller with too low a role 403, and everyone else what the route answers.
"""

from __future__ import annotations

import itertools

import httpx
import pytest

from tunesmith_server import Server, server_env, tunesmith, wait_done

USERS = ("alice", "bob", "carol", "dave", "erin")
ROLE_OF = {"dave": None, "bob": "READER", "carol": "WRITER", "alice": "OWNER"}
RANK = {None: 0, "READER": 1, "WRITER": 2, "OWNER": 3}
_ids = itertools.count()


def body(display_name: str = "m") -> dict:
    return {
        "baseModel": "models/text-bison-001",
        "displayName": display_name,
        "tuningTask": {
            "hyperparameters": {"epochCount": 1, "batchSize": 1},
            "trainingData": {"examples": {"examples": [{"textInput": "1", "output": "2"}]}},
        },
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("perm-home")
    env = server_env(home, str(tiny_model_dir), TUNESMITH_MAX_JOBS_PER_USER="0")
    # A model made while no key existed: it belongs to no one.
    from tunesmith.records.tuning import CreateTunedModelRequest
    from tunesmith.service import Service
    from tunesmith.settings import get_settings
    from tunesmith.types import TuningExample

    service = Service(get_settings(home=home, default_base_model=str(tiny_model_dir)))
    service.tuning.create_tuned_model(
        CreateTunedModelRequest("models/text-bison-001", [TuningExample("1", "2")], id="legacy")
    )
    service.close()
    keys = {}
    for user in USERS:
        extra = ("--group", "team") if user == "carol" else ()
        r = tunesmith("keys", "create", f"{user}-laptop", "--user", user, *extra, env=env)
        assert r.returncode == 0, r.stderr
        keys[user] = r.stdout.strip()
    return home, env, keys


@pytest.fixture(scope="module")
def server(env):
    home, environ, keys = env
    s = Server(home, environ)
    yield s, keys
    s.stop()


def client(server, user: str) -> httpx.Client:
    s, keys = server
    return httpx.Client(
        base_url=s.url + "/v1beta", headers={"x-goog-api-key": keys[user]}, timeout=60
    )


def new_model(server, active: bool = False) -> tuple[str, str]:
    """A model of alice's shared as above; its id and operation name."""
    model_id = f"m{next(_ids)}"
    with client(server, "alice") as alice:
        r = alice.post("/tunedModels", params={"tunedModelId": model_id}, json=body())
        assert r.status_code == 200, r.text
        op = r.json()["name"]
        for grant in (
            {"granteeType": "USER", "emailAddress": "bob", "role": "READER"},
            {"granteeType": "GROUP", "emailAddress": "team", "role": "WRITER"},
        ):
            r = alice.post(f"/tunedModels/{model_id}/permissions", json=grant)
            assert r.status_code == 200, r.text
    if active:
        s, keys = server
        headers = {"x-goog-api-key": keys["alice"]}
        with httpx.Client(base_url=s.url, headers=headers, timeout=60) as root:
            assert wait_done(root, op, timeout=120).get("response"), op
    return model_id, op


@pytest.fixture(scope="module")
def shared(server):
    return new_model(server, active=True)


def spare_permission(server, model_id: str) -> str:
    with client(server, "alice") as alice:
        grant = {"granteeType": "GROUP", "emailAddress": f"g{next(_ids)}", "role": "READER"}
        r = alice.post(f"/tunedModels/{model_id}/permissions", json=grant)
        assert r.status_code == 200, r.text
        return r.json()["name"].split("/")[-1]


# (name, least role, fresh model needed, request builder)
ROUTES = [
    ("get", "READER", False, lambda m, op, p: ("GET", f"/tunedModels/{m}", None)),
    ("operations", "READER", False, lambda m, op, p: ("GET", f"/tunedModels/{m}/operations", None)),
    ("operation", "READER", False, lambda m, op, p: ("GET", f"/{op}", None)),
    (
        "validationLosses",
        "READER",
        False,
        lambda m, op, p: ("GET", f"/tunedModels/{m}/validationLosses", None),
    ),
    (
        "generateText",
        "READER",
        False,
        lambda m, op, p: ("POST", f"/tunedModels/{m}:generateText", {"prompt": {"text": "1"}}),
    ),
    (
        "generateContent",
        "READER",
        False,
        lambda m, op, p: (
            "POST",
            f"/tunedModels/{m}:generateContent",
            {"contents": [{"parts": [{"text": "1"}]}], "generationConfig": {"maxOutputTokens": 2}},
        ),
    ),
    (
        "countTokens",
        "READER",
        False,
        lambda m, op, p: (
            "POST",
            f"/tunedModels/{m}:countTokens",
            {"contents": [{"parts": [{"text": "1"}]}]},
        ),
    ),
    (
        "patch",
        "WRITER",
        False,
        lambda m, op, p: (
            "PATCH",
            f"/tunedModels/{m}?updateMask=description",
            {"description": "x"},
        ),
    ),
    ("cancel", "WRITER", False, lambda m, op, p: ("POST", f"/{op}:cancel", None)),
    ("delete", "OWNER", True, lambda m, op, p: ("DELETE", f"/tunedModels/{m}", None)),
    (
        "listPermissions",
        "OWNER",
        False,
        lambda m, op, p: ("GET", f"/tunedModels/{m}/permissions", None),
    ),
    (
        "getPermission",
        "OWNER",
        False,
        lambda m, op, p: ("GET", f"/tunedModels/{m}/permissions/{p}", None),
    ),
    (
        "createPermission",
        "OWNER",
        False,
        lambda m, op, p: (
            "POST",
            f"/tunedModels/{m}/permissions",
            {"granteeType": "GROUP", "emailAddress": f"x{next(_ids)}", "role": "READER"},
        ),
    ),
    (
        "patchPermission",
        "OWNER",
        False,
        lambda m, op, p: (
            "PATCH",
            f"/tunedModels/{m}/permissions/{p}?updateMask=role",
            {"role": "WRITER"},
        ),
    ),
    (
        "deletePermission",
        "OWNER",
        False,
        lambda m, op, p: ("DELETE", f"/tunedModels/{m}/permissions/{p}", None),
    ),
    (
        "transferOwnership",
        "OWNER",
        True,
        lambda m, op, p: ("POST", f"/tunedModels/{m}:transferOwnership", {"emailAddress": "erin"}),
    ),
]


@pytest.mark.parametrize("user", list(ROLE_OF))
@pytest.mark.parametrize("route", ROUTES, ids=[r[0] for r in ROUTES])
def test_every_role_against_every_route(server, shared, user, route):
    name, least, fresh, build = route
    model_id, op = new_model(server) if fresh else shared
    method, path, payload = build(model_id, op, spare_permission(server, model_id))
    with client(server, user) as c:
        r = c.request(method, path, json=payload)
    role = ROLE_OF[user]
    if role is None:
        assert r.status_code == 404, (name, r.text)
        assert r.json()["error"]["status"] == "NOT_FOUND"
    elif RANK[role] < RANK[least]:
        assert r.status_code == 403, (name, r.text)
        err = r.json()["error"]
        assert err["status"] == "PERMISSION_DENIED" and role in err["message"]
    else:
        assert r.status_code == 200, (name, r.text)


def test_lists_and_filters(server, shared):
    model_id, _ = shared
    with client(server, "bob") as bob:
        listed = [m["name"] for m in bob.get("/tunedModels").json().get("tunedModels", [])]
        assert f"tunedModels/{model_id}" in listed and "tunedModels/legacy" in listed
        mine = bob.get("/tunedModels", params={"filter": "owner:me"}).json()
        assert mine.get("tunedModels", []) == []
    with client(server, "dave") as dave:
        listed = [m["name"] for m in dave.get("/tunedModels").json().get("tunedModels", [])]
        assert listed == ["tunedModels/legacy"]  # the unowned model only
        ops = [o["name"] for o in dave.get("/operations").json()["operations"]]
        assert all(o.startswith("tunedModels/legacy/") for o in ops)
    with client(server, "alice") as alice:
        mine = alice.get("/tunedModels", params={"filter": "owner:me"}).json()["tunedModels"]
        assert f"tunedModels/{model_id}" in [m["name"] for m in mine]
        assert "tunedModels/legacy" not in [m["name"] for m in mine]
        perms = alice.get(f"/tunedModels/{model_id}/permissions").json()["permissions"]
        assert perms[0] == {
            "name": f"tunedModels/{model_id}/permissions/owner",
            "granteeType": "USER",
            "emailAddress": "alice",
            "role": "OWNER",
        }
        public, _ = new_model(server)
        r = alice.post(
            f"/tunedModels/{public}/permissions", json={"granteeType": 3, "role": 3}
        )  # enum numbers: EVERYONE, READER
        assert r.status_code == 200 and r.json()["granteeType"] == "EVERYONE", r.text
    with client(server, "dave") as dave:
        everyone = dave.get("/tunedModels", params={"filter": "readers:everyone"}).json()
        assert [m["name"] for m in everyone["tunedModels"]] == [f"tunedModels/{public}"]
        assert dave.get(f"/tunedModels/{public}").status_code == 200
        r = dave.patch(f"/tunedModels/{public}", json={"description": "mine"})
        assert r.status_code == 403


def test_transfer_makes_the_old_owner_a_writer(server):
    model_id, _ = new_model(server)
    with client(server, "alice") as alice:
        r = alice.post(f"/tunedModels/{model_id}:transferOwnership", json={"emailAddress": "bob"})
        assert r.status_code == 200 and r.json() == {}, r.text
        assert alice.patch(f"/tunedModels/{model_id}", json={"description": "d"}).status_code == 200
        assert alice.delete(f"/tunedModels/{model_id}").status_code == 403
    with client(server, "bob") as bob:
        perms = bob.get(f"/tunedModels/{model_id}/permissions").json()["permissions"]
        assert perms[0]["emailAddress"] == "bob" and perms[0]["role"] == "OWNER"
        assert {"USER alice WRITER"} <= {
            f"{p['granteeType']} {p.get('emailAddress')} {p['role']}" for p in perms
        }
        assert bob.delete(f"/tunedModels/{model_id}").status_code == 200


def test_unowned_models_are_read_only_for_keys(server):
    with client(server, "dave") as dave:
        assert dave.get("/tunedModels/legacy").status_code == 200
        r = dave.delete("/tunedModels/legacy")
        assert r.status_code == 403 and "READER" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "grant, words",
    [
        ({"granteeType": "USER", "role": "READER"}, "emailAddress: required"),
        ({"granteeType": "USER", "emailAddress": "nobody", "role": "READER"}, "no API key"),
        ({"granteeType": "EVERYONE", "emailAddress": "x", "role": "READER"}, "must not be set"),
        ({"granteeType": "USER", "emailAddress": "bob", "role": "OWNER"}, "transferOwnership"),
        ({"granteeType": "ROBOT", "role": "READER"}, "granteeType"),
        ({"granteeType": "GROUP", "emailAddress": "a/../b", "role": "READER"}, "emailAddress"),
        ({"granteeType": "USER", "emailAddress": "bob", "role": "READER"}, "already has"),
    ],
)
def test_bad_permissions_are_refused_by_field(server, shared, grant, words):
    model_id, _ = shared
    with client(server, "alice") as alice:
        r = alice.post(f"/tunedModels/{model_id}/permissions", json=grant)
    assert r.status_code in (400, 409) and words in r.json()["error"]["message"], r.text


# OpenAI's view of the same jobs: (name, least role, fresh model needed, method, path after
# /openai/v1/fine_tuning/jobs/ftjob-ID); a fresh model's job is still queued or running.
OPENAI_ROUTES = [
    ("job", "READER", False, "GET", ""),
    ("events", "READER", False, "GET", "/events"),
    ("checkpoints", "READER", False, "GET", "/checkpoints"),
    ("pause", "WRITER", True, "POST", "/pause"),
    ("cancel", "WRITER", True, "POST", "/cancel"),
]


@pytest.mark.parametrize("user", list(ROLE_OF))
@pytest.mark.parametrize("route", OPENAI_ROUTES, ids=[r[0] for r in OPENAI_ROUTES])
def test_every_role_against_every_fine_tuning_job_route(server, shared, user, route):
    name, least, fresh, method, tail = route
    model_id, _op = new_model(server) if fresh else shared
    s, keys = server
    headers = {"authorization": f"Bearer {keys[user]}"}
    with httpx.Client(base_url=s.url + "/openai/v1", headers=headers, timeout=60) as c:
        r = c.request(method, f"/fine_tuning/jobs/ftjob-{model_id}{tail}", json={})
    role = ROLE_OF[user]
    if role is None:
        assert r.status_code == 404, (name, r.text)
        assert r.json()["error"]["code"] == "not_found"
    elif RANK[role] < RANK[least]:
        assert r.status_code == 403, (name, r.text)
        assert r.json()["error"]["code"] == "permission_denied"
    else:
        assert r.status_code == 200, (name, r.text)
        assert r.json()["object"] in ("fine_tuning.job", "list")
