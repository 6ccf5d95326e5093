"""Chat through OpenAI's client with the real packaged base model (slow): the chat template
is the base's own, so an instruct model answers a question sensibly, and a whole chat is rendered by that template."""

from __future__ import annotations

import openai
import pytest


@pytest.mark.slow
def test_chat_with_the_packaged_model(real_home):
    from fastapi.testclient import TestClient
    from transformers import AutoTokenizer

    from tunesmith.api import create_app
    from tunesmith.settings import get_settings

    app = create_app(get_settings(home=real_home), worker=False)
    with TestClient(app) as http:
        client = openai.OpenAI(
            base_url="http://testserver/openai/v1", api_key="any", http_client=http
        )
        ids = [m.id for m in client.models.list()]
        assert "smollm2-135m-instruct" in ids
        ask = [{"role": "user", "content": "What is the capital of France?"}]
        r = client.chat.completions.create(
            model="smollm2-135m-instruct", messages=ask, temperature=0, max_tokens=24
        )
        assert "Paris" in r.choices[0].message.content
        streamed = client.chat.completions.create(
            model="smollm2-135m-instruct", messages=ask, temperature=0, max_tokens=24, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        assert text == r.choices[0].message.content
        # A chat reaches the model as the base's chat template renders it, every turn in.
        chat = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hello, my name is Ada."},
            {"role": "assistant", "content": "Nice to meet you, Ada! How can I help?"},
            {"role": "user", "content": "What is my name?"},
        ]
        r = client.chat.completions.create(
            model="smollm2-135m-instruct", messages=chat, temperature=0, max_tokens=24
        )
        assert r.choices[0].message.content.strip()
        tokenizer = AutoTokenizer.from_pretrained(base_dir(app))
        rendered = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        expected = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        assert r.usage.prompt_tokens == expected


def base_dir(app):
    from tunesmith.engine import base_models

    service = app.state.service
    spec = service.base_models.named("models/smollm2-135m-instruct")
    return base_models.materialize(spec, service.settings.base_models_dir)
