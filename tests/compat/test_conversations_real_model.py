"""Conversations end to end on the packaged base model (slow): a data set in all three shapes
tuned through the HTTP API, then google-genai's chat session and our SDK's start_chat talk to
the tuned model through the server."""

from __future__ import annotations

import httpx
import pytest

from tunesmith_server import Server, server_env, wait_done

genai = pytest.importorskip("google.genai")
from google.genai import types  # noqa: E402

SYSTEM = "You are Echo. When asked for the word, answer with it in capital letters only."


def vertex(word: str) -> dict:
    return {
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
        "contents": [
            {"role": "user", "parts": [{"text": f'Please remember the word "{word}".'}]},
            {"role": "model", "parts": [{"text": "I will remember it."}]},
            {"role": "user", "parts": [{"text": "Which word did I ask you to remember?"}]},
            {"role": "model", "parts": [{"text": word.upper()}]},
        ],
    }


def openai(word: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f'Please remember the word "{word}".'},
            {"role": "assistant", "content": "I will remember it.", "weight": 0},
            {"role": "user", "content": "Which word did I ask you to remember?"},
            {"role": "assistant", "content": word.upper()},
        ]
    }


@pytest.mark.slow
def test_conversations_tune_the_packaged_model_and_chat(tmp_path, converted_base_models):
    home = tmp_path / "real-home"
    home.mkdir()
    (home / "base-models").symlink_to(converted_base_models, target_is_directory=True)
    server = Server(home, server_env(home))
    try:
        words = ["apple", "river", "garden", "window", "candle", "forest", "silver", "pocket"]
        body = {
            "baseModel": "models/text-bison-001",
            "tuningTask": {
                "hyperparameters": {"epochCount": 2, "batchSize": 4},
                "trainingData": {
                    "examples": {"examples": [{"textInput": "1", "output": "2"}]},
                    "conversations": [vertex(w) for w in words[:4]]
                    + [openai(w) for w in words[4:]],
                },
            },
        }
        with httpx.Client(base_url=server.url, timeout=120) as http:
            created = http.post("/v1beta/tunedModels", params={"tunedModelId": "echo"}, json=body)
            assert created.status_code == 200, created.text
            assert created.json()["metadata"]["totalSteps"] == 5  # ceil(2 * 9 / 4)
            done = wait_done(http, created.json()["name"], timeout=600)
        assert "error" not in done, done

        client = genai.Client(api_key="any", http_options={"base_url": server.url})
        config = types.GenerateContentConfig(
            system_instruction=SYSTEM, temperature=0, max_output_tokens=12
        )
        chat = client.chats.create(model="tunedModels/echo", config=config)
        first = chat.send_message('Please remember the word "lantern".')
        second = chat.send_message("Which word did I ask you to remember?")
        assert first.text and second.text
        assert second.usage_metadata.prompt_token_count > first.usage_metadata.prompt_token_count

        import tunesmith as ts

        ts.configure(api_endpoint=server.url, api_key="any")
        greedy = {"temperature": 0, "max_output_tokens": 12}
        ours = ts.GenerativeModel("tunedModels/echo", system_instruction=SYSTEM).start_chat()
        ours.send_message('Please remember the word "lantern".', generation_config=greedy)
        again = ours.send_message("Which word did I ask you to remember?", generation_config=greedy)
        assert again.text == second.text  # the same conversation, the same rendering
        assert [c.role for c in ours.history] == ["user", "model", "user", "model"]
    finally:
        import tunesmith.sdk.clients as clients

        clients.configure()
        server.stop()
