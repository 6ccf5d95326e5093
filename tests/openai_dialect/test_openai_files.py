"""``/files`` with the real ``openai`` client: upload (chat rows and prompt/completion rows),
list with auto-pagination, retrieve, content, delete (gone from disk), owners, and bad files
refused naming the line."""

from __future__ import annotations

import json

import openai
import pytest

CHAT = "".join(
    json.dumps(
        {
            "messages": [
                {"role": "system", "content": "Count."},
                {"role": "user", "content": f"{i}"},
                {"role": "assistant", "content": f"{i + 1}"},
            ]
        }
    )
    + "\n"
    for i in range(12)
).encode()
PROMPTS = "".join(
    json.dumps({"prompt": f"{i}", "completion": f"{i + 1}"}) + "\n" for i in range(12)
).encode()


def test_upload_retrieve_content_and_delete(alice, oai_home):
    home, _ = oai_home
    f = alice.files.create(file=("count.jsonl", CHAT), purpose="fine-tune")
    assert (f.object, f.filename, f.purpose, f.bytes) == (
        "file",
        "count.jsonl",
        "fine-tune",
        len(CHAT),
    )
    assert f.id.startswith("file-") and f.created_at > 0
    assert alice.files.retrieve(f.id).filename == "count.jsonl"
    assert alice.files.content(f.id).read() == CHAT
    on_disk = home / "files" / f.id
    assert on_disk.read_bytes() == CHAT
    deleted = alice.files.delete(f.id)
    assert (deleted.id, deleted.deleted) == (f.id, True)
    assert not on_disk.exists()
    with pytest.raises(openai.NotFoundError):
        alice.files.retrieve(f.id)


def test_prompt_completion_rows_are_accepted(alice):
    f = alice.files.create(file=("p.jsonl", PROMPTS), purpose="fine-tune")
    assert alice.files.content(f.id).read() == PROMPTS
    alice.files.delete(f.id)


def test_another_key_cannot_see_or_delete_a_file(alice, bob):
    f = alice.files.create(file=("count.jsonl", CHAT), purpose="fine-tune")
    for call in (bob.files.retrieve, bob.files.content, bob.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(f.id)
    assert f.id not in [x.id for x in bob.files.list()]
    assert alice.files.retrieve(f.id).id == f.id  # still there
    alice.files.delete(f.id)


def test_list_pages_newest_first_and_auto_paginates(carol):
    made = [
        carol.files.create(file=(f"{n}.jsonl", PROMPTS), purpose="fine-tune").id for n in range(3)
    ]
    first = carol.files.list(limit=2)
    assert [f.id for f in first.data] == made[::-1][:2] and first.has_more
    assert [f.id for f in carol.files.list(limit=2)] == made[::-1]  # follows after= itself
    for file_id in made:
        carol.files.delete(file_id)
    assert list(carol.files.list()) == []


@pytest.mark.parametrize(
    "content, words",
    [
        (PROMPTS + b"{not json\n", "file, line 13: not valid JSON"),
        (PROMPTS + b"\n" + b'{"prompt": "x"}\n', "file, line 14: missing key 'completion'"),
        (b'{"messages": [{"role": "robot", "content": "hi"}]}\n', "file, line 1, messages[1]"),
        (b"", "file: no examples"),
    ],
)
def test_a_bad_file_is_400_naming_the_line(alice, content, words):
    with pytest.raises(openai.BadRequestError) as e:
        alice.files.create(file=("bad.jsonl", content), purpose="fine-tune")
    assert words in e.value.body["message"]
    assert e.value.body["param"] == "file"
    assert list(alice.files.list(purpose="fine-tune")) == [] or all(
        f.filename != "bad.jsonl" for f in alice.files.list()
    )


def test_other_purposes_are_refused(alice):
    with pytest.raises(openai.BadRequestError) as e:
        alice.files.create(file=("b.jsonl", PROMPTS), purpose="batch")
    assert e.value.body["param"] == "purpose"


def test_a_file_over_the_size_limit_is_refused(tmp_path, tiny_model_dir):
    from fastapi.testclient import TestClient
    from openai import OpenAI
    from openai_helpers import make_settings

    from tunesmith.api import create_app

    settings = make_settings(tmp_path, tiny_model_dir, max_file_bytes=100)
    with TestClient(create_app(settings, worker=False)) as http:
        client = OpenAI(base_url="http://testserver/openai/v1", api_key="x", http_client=http)
        with pytest.raises(openai.BadRequestError) as e:
            client.files.create(file=("p.jsonl", PROMPTS), purpose="fine-tune")
        assert "over the limit of 100 bytes" in e.value.body["message"]
        assert not (tmp_path / "files").exists() or not any((tmp_path / "files").iterdir())
