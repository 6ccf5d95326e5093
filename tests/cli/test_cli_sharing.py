"""``tunesmith models share | permissions | unshare | transfer`` against a real keyed server,
in-process (typer's CliRunner) with --endpoint / --api-key, as an owner and as another user."""

from __future__ import annotations

import json

import httpx
import pytest

from tunesmith.cli import app
from tunesmith.cli._common import FAILED, NOT_ALLOWED, NOT_FOUND, OK, USAGE
from tunesmith_server import tunesmith


@pytest.fixture(scope="module")
def keys(keyed_server):
    """The owner's key (user "tests") and a second user's ("bob", in group "team")."""
    server, key = keyed_server
    created = tunesmith("keys", "create", "bob", "--group", "team", env=server.env)
    assert created.returncode == 0, created.stderr
    body = {
        "baseModel": "models/text-bison-001",
        "tuningTask": {
            "hyperparameters": {"epochCount": 1, "batchSize": 1},
            "trainingData": {"examples": {"examples": [{"textInput": "1", "output": "2"}]}},
        },
    }
    r = httpx.post(
        f"{server.url}/v1beta/tunedModels",
        params={"tunedModelId": "numbers"},
        headers={"x-goog-api-key": key},
        json=body,
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return server.url, {"owner": key, "bob": created.stdout.strip()}


def run(runner, keys, who: str, *args, input=None):
    url, secrets = keys
    result = runner.invoke(app, [*args, "--endpoint", url, "--api-key", secrets[who]], input=input)
    assert "Traceback" not in result.output, result.output
    return result


def test_share_list_change_unshare(runner, keys):
    shared = run(runner, keys, "owner", "models", "share", "numbers", "bob", "--json")
    assert shared.exit_code == OK, shared.output
    grant = json.loads(shared.stdout)
    assert (grant["granteeType"], grant["emailAddress"], grant["role"]) == ("USER", "bob", "READER")

    # bob can see it now, but not share it.
    assert run(runner, keys, "bob", "models", "show", "numbers").exit_code == OK
    denied = run(runner, keys, "bob", "models", "share", "numbers", "--everyone")
    assert denied.exit_code == NOT_ALLOWED and "bob is a READER" in denied.stderr

    # Sharing again changes the role; groups and everyone too.
    again = run(runner, keys, "owner", "models", "share", "numbers", "bob", "--role", "writer")
    assert again.exit_code == OK and "user bob is now a WRITER" in again.stderr
    assert (
        run(runner, keys, "owner", "models", "share", "numbers", "team", "--group").exit_code == OK
    )
    listed = run(runner, keys, "owner", "models", "permissions", "numbers", "--json")
    assert listed.exit_code == OK
    rows = [(p["granteeType"], p.get("emailAddress"), p["role"])
            for p in json.loads(listed.stdout)["permissions"]]  # fmt: skip
    assert rows[0] == ("USER", "tests", "OWNER")
    assert sorted(rows[1:]) == [("GROUP", "team", "READER"), ("USER", "bob", "WRITER")]
    table = run(runner, keys, "owner", "models", "permissions", "numbers")
    assert "group team" in table.stdout and "WRITER" in table.stdout

    # Bad input is the server's message and exit 2; a missing model or grant is 3.
    bad = run(runner, keys, "owner", "models", "share", "numbers", "bob", "--role", "owner")
    assert bad.exit_code == USAGE and "role: OWNER cannot be granted" in bad.stderr
    nobody = run(runner, keys, "owner", "models", "share", "numbers", "nobody")
    assert nobody.exit_code == USAGE and "no API key belongs to user 'nobody'" in nobody.stderr
    missing = run(runner, keys, "owner", "models", "share", "missing", "bob")
    assert missing.exit_code == NOT_FOUND
    absent = run(runner, keys, "owner", "models", "unshare", "numbers", "--everyone")
    assert absent.exit_code == NOT_FOUND and "not shared with everyone" in absent.stderr

    for args in (("bob",), ("team", "--group")):
        gone = run(runner, keys, "owner", "models", "unshare", "numbers", *args)
        assert gone.exit_code == OK, gone.output
    assert run(runner, keys, "bob", "models", "show", "numbers").exit_code == NOT_FOUND


def test_transfer_asks_first_then_hands_over(runner, keys):
    declined = run(runner, keys, "owner", "models", "transfer", "numbers", "bob", input="n\n")
    assert declined.exit_code == FAILED and "nothing done" in declined.stderr
    done = run(runner, keys, "owner", "models", "transfer", "numbers", "bob", "--yes")
    assert done.exit_code == OK and "bob now owns tunedModels/numbers" in done.stderr

    listed = run(runner, keys, "bob", "models", "permissions", "numbers", "--json")
    rows = [(p.get("emailAddress"), p["role"]) for p in json.loads(listed.stdout)["permissions"]]
    assert rows == [("bob", "OWNER"), ("tests", "WRITER")]
    denied = run(runner, keys, "owner", "models", "transfer", "numbers", "tests", "--yes")
    assert denied.exit_code == NOT_ALLOWED
