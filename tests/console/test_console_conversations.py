"""The console with conversations: the create page previews each row's turns and sends them
in tunesmith's extension; the playground keeps a conversation going."""

from __future__ import annotations

import json

from test_console_browser import ACTIVE_TIMEOUT_MS, page  # noqa: F401  (the fixture)


def test_conversation_rows_preview_turns_then_chat(page, tiny_model_dir, artifacts, tmp_path):  # noqa: F811
    rows = [
        {
            "systemInstruction": {"parts": [{"text": "count"}]},
            "contents": [
                {"role": "user", "parts": [{"text": f"{i}"}]},
                {"role": "model", "parts": [{"text": f"{i + 1}"}]},
                {"role": "user", "parts": [{"text": "more"}]},
                {"role": "model", "parts": [{"text": f"{i + 2}"}]},
            ],
        }
        for i in range(3)
    ]
    rows.append(
        {
            "messages": [
                {"role": "user", "content": "7"},
                {"role": "assistant", "content": "8", "weight": 1},
            ]
        }
    )
    rows.append({"text_input": "9", "output": "10"})
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    page.goto(page.url.split("#")[0] + "#/new")
    page.set_input_files("#file", str(data))
    page.wait_for_selector("#preview >> text=5 conversations")
    first = page.locator("#preview tbody tr").first
    assert [t.inner_text() for t in first.locator(".turn").all()] == [
        "system: count", "user: 0", "model: 1", "user: more", "model: 2",
    ]  # fmt: skip
    page.fill("#base-model", str(tiny_model_dir))
    page.fill("#id", "browser-chat")
    page.fill("#epochs", "1")
    page.fill("#batch-size", "2")
    page.screenshot(path=artifacts / "console-create-conversations.png", full_page=True)
    page.click("#start")
    page.wait_for_url("**/#/models/browser-chat")
    page.wait_for_selector(".badge.active", timeout=ACTIVE_TIMEOUT_MS)
    assert page.locator(".progress-text").first.inner_text() == "3/3 steps"

    page.fill("#system-instruction", "count")
    page.check("#keep-chat")
    page.fill("#max-tokens", "4")
    for message in ("0", "more"):
        page.fill("#prompt", message)
        page.click("#generate")
        page.wait_for_selector("#outputs >> text=1 candidate")
    page.wait_for_selector("#chat-log .turn >> nth=3")
    roles = [t.inner_text().split(":")[0] for t in page.locator("#chat-log .turn").all()]
    assert roles == ["user", "model", "user", "model"]
    page.screenshot(path=artifacts / "console-chat.png", full_page=True)
    page.click("#new-chat")
    assert page.locator("#chat-log .turn").count() == 0

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "1"}]}) + "\n")
    page.goto(page.url.split("#")[0] + "#/new")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#preview tr.bad >> text=ends on a user turn")
    page.fill("#base-model", str(tiny_model_dir))
    page.click("#start")
    page.wait_for_selector("#form-error >> text=training_data row 1, turn 1: the conversation ends")
