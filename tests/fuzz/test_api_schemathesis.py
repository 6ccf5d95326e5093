"""schemathesis against ``/openapi.json`` of a real server: no 500 on any route, whatever comes.

The server runs with ``--no-worker`` (nothing trains while it is fuzzed) on the tiny model,
and the budget is bounded: a few examples per operation, one API version of Google's (the
others are the same routes under another prefix) and OpenAI's dialect. Afterwards nothing is half-stored: every tuned model
has its operation, and the log holds no traceback.
"""

from __future__ import annotations

import sqlite3

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tunesmith_server import Server, server_env

EXAMPLES = 6


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("fuzz-home")
    s = Server(home, server_env(home, str(tiny_model_dir)), "--no-worker")
    yield s
    s.stop()


def _openapi() -> dict:
    """The app's OpenAPI document, built in-process so pytest can collect one test per route;
    ``test_the_schema_is_what_the_server_serves`` checks it is the server's /openapi.json."""
    import tempfile

    from tunesmith.api import create_app
    from tunesmith.settings import get_settings

    with tempfile.TemporaryDirectory() as home:
        app = create_app(get_settings(home=home), worker=False)
        doc = app.openapi()
        app.state.service.close()
    return doc


OPENAPI = _openapi()
# Google's routes under one version, and OpenAI's dialect.
schema = schemathesis.openapi.from_dict(OPENAPI).include(path_regex=r"^/(v1beta|openai/v1)/")


def test_the_schema_is_what_the_server_serves(fuzzed_server):
    import httpx

    assert httpx.get(f"{fuzzed_server.url}/openapi.json").json() == OPENAPI


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error(case, fuzzed_server):
    response = case.call(base_url=fuzzed_server.url, timeout=60)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if response.status_code >= 400:
        err = response.json()["error"]
        if case.path.startswith("/openai/"):  # OpenAI's envelope
            assert set(err) == {"message", "type", "param", "code"} and err["message"]
        else:
            assert set(err) == {"code", "message", "status"} and err["message"]
    case.validate_response(response, checks=[not_a_server_error])


def test_nothing_half_stored(fuzzed_server):
    db = sqlite3.connect(fuzzed_server.home / "tunesmith.db")
    orphans = db.execute(
        "SELECT id FROM tuned_models WHERE id NOT IN (SELECT tuned_model_id FROM operations)"
    ).fetchall()
    assert orphans == []
    log = fuzzed_server.log()
    assert "Traceback" not in log and "unexpected error" not in log
