"""Chat through OpenAI's client with the real packaged base model (slow): the chat template
is the base's own, so an instruct model answers a question sensibly."""

from __future__ import annotations

import openai
import pytest


@pytest.mark.slow
def test_chat_with_the_packaged_model(real_home):
    from fastapi.testclient import TestClient

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
