"""Sharing through the SDK, shaped as google-generativeai's ``model.permissions``: remote
against a real server with two keys (an owner and a reader), and embedded."""

from __future__ import annotations

import pytest

import tunesmith as ts
from tunesmith.errors import PermissionDenied
from tunesmith.sdk.remote import RemoteClient
from tunesmith_server import tunesmith

DATA = [{"text_input": "1", "output": "2"}, {"text_input": "3", "output": "4"}]


@pytest.fixture()
def owner_and_reader(keyed_server, home):
    """The SDK configured with the owner's key ("tests"), and a client with a reader's key."""
    server, key = keyed_server
    created = tunesmith("keys", "create", "reader-key", "--user", "reader", env=server.env)
    assert created.returncode == 0, created.stderr
    ts.configure(api_endpoint=server.url, api_key=key)
    reader = RemoteClient(server.url, api_key=created.stdout.strip())
    yield reader
    reader.close()
    ts.configure()


def test_owner_shares_reader_uses_then_owner_transfers(owner_and_reader):
    reader = owner_and_reader
    op = ts.create_tuned_model(
        "models/text-bison-001", DATA, id="shared", epoch_count=1, batch_size=2
    )
    model = op.result()
    assert model.state is ts.TunedModelState.ACTIVE

    # Not shared yet: the model does not exist for the reader.
    with pytest.raises(ts.NotFound):
        ts.get_tuned_model("shared", client=reader)

    p = model.permissions.create(role="reader", email_address="reader")
    assert (p.role, p.grantee_type, p.email_address) == ("READER", "USER", "reader")
    listed = [(x.email_address, x.role) for x in model.permissions.list()]
    assert listed == [("tests", "OWNER"), ("reader", "READER")]
    assert model.permissions.get(p.name) == p
    assert ts.Permission.get(p.name) == p

    # A reader can read and generate, not change, delete or share.
    assert ts.get_tuned_model("shared", client=reader).name == "tunedModels/shared"
    answer = ts.generate_text(
        model="tunedModels/shared", prompt="1", max_output_tokens=2, client=reader
    )
    assert isinstance(answer.result, str)
    for forbidden in (
        lambda: ts.delete_tuned_model("shared", client=reader),
        lambda: ts.update_tuned_model("shared", {"description": "x"}, client=reader),
        lambda: list(ts.Permissions("tunedModels/shared", client=reader).list()),
    ):
        with pytest.raises(PermissionDenied) as err:
            forbidden()
        assert "reader is a READER" in err.value.message
    assert ts.get_tuned_model("shared").state is ts.TunedModelState.ACTIVE

    # Rules are the server's, raised as typed errors naming the field.
    with pytest.raises(ts.InvalidArgument, match="role: OWNER cannot be granted"):
        model.permissions.create(role="owner", grantee_type="everyone")
    with pytest.raises(ts.InvalidArgument, match="emailAddress: no API key belongs"):
        model.permissions.create(role="reader", email_address="nobody")
    with pytest.raises(ts.InvalidArgument, match="update_mask"):
        p.update({"email_address": "someone"})

    # WRITER: the reader may now change the model, still not delete it.
    assert p.update({"role": 2}).role == "WRITER"  # Google's enum numbers work too
    assert ts.update_tuned_model("shared", {"description": "d"}, client=reader).description == "d"
    with pytest.raises(PermissionDenied):
        ts.delete_tuned_model("shared", client=reader)

    p.delete()
    with pytest.raises(ts.NotFound):
        ts.get_tuned_model("shared", client=reader)

    # Transfer: the reader owns it (and may delete it); the previous owner keeps WRITER.
    model.permissions.transfer_ownership("reader")
    as_new_owner = ts.Permissions("tunedModels/shared", client=reader)
    assert [(x.email_address, x.role) for x in as_new_owner] == [
        ("reader", "OWNER"),
        ("tests", "WRITER"),
    ]
    with pytest.raises(PermissionDenied):
        ts.delete_tuned_model("shared")
    ts.delete_tuned_model("shared", client=reader)
    with pytest.raises(ts.NotFound):
        ts.get_tuned_model("shared")


def test_embedded_permissions_share_the_rules(service, home):
    from tunesmith.service import CreateTunedModelRequest
    from tunesmith.store.keys import KeyStore
    from tunesmith.types import TuningExample

    KeyStore(service.store).create("bob-key", user="bob")
    service.tuning.create_tuned_model(
        CreateTunedModelRequest("models/text-bison-001", [TuningExample("1", "2")], id="local")
    )
    client = ts.EmbeddedClient()
    perms = ts.Permissions("tunedModels/local", client=client)

    everyone = perms.create(role="READER", grantee_type="everyone")
    bob = perms.create(role="writer", grantee_type="user", email_address="bob")
    assert sorted((p.grantee_type, p.role) for p in perms.list()) == [
        ("EVERYONE", "READER"),
        ("USER", "WRITER"),
    ]
    assert perms.get(bob.name.rsplit("/", 1)[-1]) == bob
    with pytest.raises(ts.AlreadyExists):
        perms.create(role="reader", email_address="bob")
    with pytest.raises(ts.InvalidArgument, match="emailAddress: must not be set"):
        perms.create(role="reader", grantee_type="everyone", email_address="bob")
    with pytest.raises(ts.InvalidArgument, match="role: 'ADMIN' must be READER or WRITER"):
        perms.create(role="admin", email_address="bob")
    with pytest.raises(ts.InvalidArgument, match="role: expected a name or number, not dict"):
        perms.create(role={"role": "reader"}, email_address="bob")
    with pytest.raises(ts.InvalidArgument, match="updates: expected a dict"):
        bob.update("writer")
    everyone.delete()
    perms.transfer_ownership("bob")
    assert [(p.email_address, p.role) for p in perms.list()] == [("bob", "OWNER")]
    with pytest.raises(ts.NotFound):
        perms.get("gone")
