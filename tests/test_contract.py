"""One contract: the service's methods are what every client offers and every route serves.

:class:`~tunesmith.sdk.clients.Client` writes the contract down once; these tests hold the
other places to it, so a method added in one and forgotten in another fails here, naming it:
the embedded client calls the service's method of the same name, the remote client has the
same signature and reaches exactly one route of its own, and every Google-dialect route is
reached by one contract method.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import httpx
import pytest
from starlette.routing import Match

from tunesmith.records.permissions import NewPermission
from tunesmith.records.tuning import CreateTunedModelRequest
from tunesmith.sdk.clients import Client, EmbeddedClient
from tunesmith.sdk.remote import RemoteClient
from tunesmith.types import GenerationConfig, TuningExample

CONTRACT = sorted(n for n, v in vars(Client).items() if inspect.isfunction(v) and n[0] != "_")

# What each client has beyond the contract: how it is built, not what it offers.
EMBEDDED_EXTRAS = {"runtime", "service", "generation_server", "settings"}
REMOTE_EXTRAS = {"close", "endpoint", "api_key"}


def _public(cls) -> set[str]:
    return {n for n in vars(cls) if not n.startswith("_")}


def test_the_contract_is_what_the_sdk_calls():
    assert "generate" in CONTRACT and "keep_running" not in CONTRACT
    assert len(CONTRACT) == 22


@pytest.mark.parametrize("client", [EmbeddedClient, RemoteClient])
def test_each_client_offers_the_contract_with_its_signatures(client):
    extras = EMBEDDED_EXTRAS if client is EmbeddedClient else REMOTE_EXTRAS
    assert _public(client) - extras == set(CONTRACT)
    for name in CONTRACT:
        want = inspect.signature(getattr(Client, name))
        assert inspect.signature(getattr(client, name)) == want, f"{client.__name__}.{name}"


def _contract_params(name: str) -> list[str]:
    params = list(inspect.signature(getattr(Client, name)).parameters)
    assert params[0] == "self" and params[-1] == "opts", name
    return params[1:-1]


def test_each_contract_method_is_one_service_method_with_the_same_parameters(service):
    parts = {
        n: p
        for n, p in vars(service).items()
        if type(p).__module__.startswith("tunesmith.service.")
    }
    for name in CONTRACT:
        owners = [part for part, obj in parts.items() if inspect.ismethod(getattr(obj, name, None))]
        assert len(owners) == 1, f"{name}: service parts offering it: {owners}"
        method = getattr(parts[owners[0]], name)
        params = list(inspect.signature(method).parameters.values())
        want = _contract_params(name)
        assert [p.name for p in params[: len(want)]] == want, name
        rest = params[len(want) :]
        # The service also takes who asks (None: the open caller the embedded client is).
        if rest and rest[0].kind is not inspect.Parameter.KEYWORD_ONLY:
            assert rest[0].name == "caller" and rest[0].default is None, name
        # ... and the embedded client calls exactly that method, no other service method.
        assert _service_calls(EmbeddedClient, name) == {f"{owners[0]}.{name}"}, name


def _service_calls(cls, name: str) -> set[str]:
    """The ``self.service.PART.METHOD`` calls in a method's source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(cls, name))))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            part = node.func.value
            if (
                isinstance(part, ast.Attribute)
                and isinstance(part.value, ast.Attribute)
                and part.value.attr == "service"
            ):
                found.add(f"{part.attr}.{node.func.attr}")
    return found


# One call per contract method (list_operations also without a name: every operation).
EXAMPLE = CreateTunedModelRequest("models/base", [TuningExample("1", "2")], id="m")
CALLS = {
    "create_tuned_model": [(EXAMPLE,)],
    "get_tuned_model": [("tunedModels/m",)],
    "list_tuned_models": [(None, None, None)],
    "update_tuned_model": [("tunedModels/m", {"description": "d"}, ["description"])],
    "delete_tuned_model": [("tunedModels/m",)],
    "get_validation_losses": [("tunedModels/m",)],
    "get_operation": [("tunedModels/m/operations/o",)],
    "wait_operation": [("tunedModels/m/operations/o", 2.0)],
    "list_operations": [("tunedModels/m",), (None,)],
    "cancel_operation": [("tunedModels/m/operations/o",)],
    "list_models": [()],
    "get_model": [("models/base",)],
    "generate": [("tunedModels/m", "hi", GenerationConfig())],
    "generate_stream": [("tunedModels/m", "hi", GenerationConfig())],
    "count_tokens": [("tunedModels/m", "hi")],
    "create_permission": [("tunedModels/m", NewPermission("USER", "bob", "READER"))],
    "list_permissions": [("tunedModels/m", None, None)],
    "get_permission": [("tunedModels/m/permissions/p",)],
    "update_permission": [("tunedModels/m/permissions/p", "WRITER", ["role"])],
    "delete_permission": [("tunedModels/m/permissions/p",)],
    "transfer_ownership": [("tunedModels/m", "bob")],
    "export_tuned_model": [("tunedModels/m", "gguf", Path("unused"))],
}

# Google's PaLM methods, served for old clients; the contract's generate / count_tokens are
# Gemini's generateContent / countTokens.
PALM_ONLY = {"generate_text", "count_text_tokens"}


class _Sent(Exception):
    pass


def _routes_reached(name: str) -> set[str]:
    """The Google-dialect routes the remote client's call reaches (its first request; the
    call stops there), matched in the order the app includes them."""
    from tunesmith.api.routes import ROUTERS

    seen: list[httpx.Request] = []

    def record(request: httpx.Request):
        seen.insert(0, request)
        raise _Sent

    client = RemoteClient("http://tunesmith.test", transport=httpx.MockTransport(record))
    reached = set()
    for args in CALLS[name]:
        with pytest.raises(_Sent):
            result = getattr(client, name)(*args)
            if inspect.isgenerator(result):
                next(result)
        path = seen[0].url.path
        assert path.startswith("/v1beta/"), path
        scope = {"type": "http", "path": path.removeprefix("/v1beta"), "method": seen[0].method}
        matched = [
            r for router in ROUTERS for r in router.routes if r.matches(scope)[0] is Match.FULL
        ]
        assert matched, f"{name}: {seen[0].method} {path} reaches no route"
        reached.add(matched[0].endpoint.__name__)
    return reached


def test_the_routes_are_the_contract_methods_one_to_one():
    from tunesmith.api.routes import ROUTERS

    served: dict[str, str] = {}
    for name in CONTRACT:
        for route in _routes_reached(name):
            assert route not in served, f"{route} serves both {served[route]} and {name}"
            served[route] = name
    google_routes = {r.endpoint.__name__ for router in ROUTERS for r in router.routes}
    assert google_routes - set(served) == PALM_ONLY
