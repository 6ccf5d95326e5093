"""OpenAI's error envelope, retries and lists: what the real ``openai`` client does with them.

The client retries 408, 409, 429 and 5xx unless the answer says ``x-should-retry: false``;
tunesmith says so where a retry would be wrong (a conflict, an internal error that may have
followed a side effect), so the client asks once.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from openai_helpers import make_settings

from tunesmith.api.openai.errors import describe
from tunesmith.api.openai.pagination import ListParams, list_json, list_params, page
from tunesmith.errors import AlreadyExists, Internal, InvalidArgument, ResourceExhausted


@pytest.fixture()
def app_with(tmp_path, tiny_model_dir):
    """An app with its own settings (``app_with(requests_per_minute=2)``), and an open server
    (no keys): any key is accepted."""
    from tunesmith.api import create_app

    apps = []

    def make(**overrides):
        app = create_app(
            make_settings(tmp_path / "home", tiny_model_dir, **overrides), worker=False
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.service.close()


def client(app, **kw) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://testserver/openai/v1", api_key="k", http_client=TestClient(app), **kw
    )


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (AlreadyExists("x: taken"), False),
        (Internal("boom"), False),
        (ResourceExhausted("busy"), True),
    ],
)
def test_the_client_retries_only_what_may_be_retried(app_with, error, retried):
    app = app_with()
    calls = []

    async def fail():
        calls.append(1)
        raise error

    app.add_api_route("/openai/v1/fail", fail, methods=["POST"])
    with pytest.raises(openai.APIStatusError) as e:
        client(app, max_retries=1).post("/fail", cast_to=httpx.Response, body={})
    assert e.value.status_code == error.http_status
    assert len(calls) == (2 if retried else 1)
    assert e.value.body["message"] == error.message


def test_errors_name_the_field_they_are_about():
    status, body, headers = describe(InvalidArgument("messages[1].role: 'robot' is not a role"))
    assert status == 400 and body["error"]["param"] == "messages[1].role"
    assert headers == {"x-should-retry": "false"}
    assert describe(InvalidArgument("Request payload too big"))[1]["error"]["param"] is None


def test_rate_limit_is_429_in_openais_envelope_on_the_same_budget(app_with):
    app = app_with(requests_per_minute=2)
    c = client(app, max_retries=0)
    http = TestClient(app)
    http.get("/v1beta/models", headers={"x-goog-api-key": "k"})  # Google's route: same bucket
    c.models.list()
    with pytest.raises(openai.RateLimitError) as e:
        c.models.list()
    assert e.value.body["code"] == "rate_limit_exceeded"
    assert int(e.value.response.headers["retry-after"]) >= 1


def test_an_oversized_body_is_400_in_openais_envelope(app_with):
    c = client(app_with(max_request_bytes=200), max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model="tiny", prompt="x" * 500)
    assert "payload size exceeds the limit" in e.value.body["message"]


def test_a_page_after_an_id():
    items = [{"id": f"i{n}"} for n in range(5)]
    chosen, more = page(items, ListParams(None, 2), lambda i: i["id"])
    assert [i["id"] for i in chosen] == ["i0", "i1"] and more
    chosen, more = page(items, ListParams("i2", 2), lambda i: i["id"])
    assert [i["id"] for i in chosen] == ["i3", "i4"] and not more
    assert list_json(chosen, more) == {
        "object": "list",
        "data": chosen,
        "has_more": False,
        "first_id": "i3",
        "last_id": "i4",
    }
    with pytest.raises(InvalidArgument, match="^after: "):
        page(items, ListParams("gone", 2), lambda i: i["id"])
    for bad in ("0", "101", "ten"):
        with pytest.raises(InvalidArgument, match="^limit: "):
            list_params(None, bad)


def test_an_error_after_the_stream_began_is_its_last_event(app_with, monkeypatch):
    """The status is sent with the first token; a failure after it (the generation thread
    failing, say) arrives as ``data: {"error": ...}``, which the client raises."""
    from tunesmith.serving import Delta, Stream

    app = app_with()

    def failing(*_args):
        stream = Stream()
        stream.put(Delta({0: "one "}))
        stream.put(Internal("generation failed: RuntimeError: boom"))
        return stream

    monkeypatch.setattr(app.state.service.generation, "generate_stream", failing)
    chunks = client(app).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "1"}], stream=True
    )
    seen = []
    with pytest.raises(openai.APIError, match="boom") as e:
        for chunk in chunks:
            seen += [c.delta.content for c in chunk.choices]
    assert seen == ["", "one "]
    assert e.value.body["type"] == "server_error"
