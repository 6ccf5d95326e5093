"""The seed's SDK flow through the server with the real packaged base model (slow)."""

from __future__ import annotations

import pytest

from tunesmith_server import Server, server_env

genai = pytest.importorskip("google.generativeai")


@pytest.mark.slow
def test_seed_sdk_flow_with_the_packaged_model(tmp_path, converted_base_models):
    home = tmp_path / "real-home"
    home.mkdir()
    (home / "base-models").symlink_to(converted_base_models, target_is_directory=True)
    server = Server(home, server_env(home))
    try:
        genai.configure(
            api_key="any", transport="rest", client_options={"api_endpoint": server.url}
        )
        op = genai.create_tuned_model(
            source_model="models/text-bison-001",
            training_data=[{"text_input": "1", "output": "2"}, {"text_input": "3", "output": "4"}],
            id="real-model",
            epoch_count=1,
            batch_size=2,
            learning_rate=0.001,
        )
        model = op.result()
        assert model.base_model == "models/smollm2-135m-instruct"
        reply = genai.GenerativeModel("tunedModels/real-model").generate_content(
            "5", generation_config=genai.GenerationConfig(temperature=0, max_output_tokens=8)
        )
        assert reply.text.strip()
    finally:
        from google.generativeai import client as genai_client

        genai_client._client_manager.clients.clear()
        server.stop()
