"""google-generativeai 0.8.6's documented flow, unmodified, against a server with an API key and
the DEFAULT limits (600 requests per minute), on an operation that stays unfinished for over a
minute: ``wait_bar`` polls it without sleeping all that time (about 900 reads here, well past
the key's 600), and the calls after it (the result, generation with the tuned model, a list)
are still answered. With operation reads drawing on the key's budget this failed with
``429 ... over 600 per minute for this API key`` on generate_content."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from tunesmith_server import Server, server_env, tunesmith

genai = pytest.importorskip("google.generativeai")
from google.ai import generativelanguage_v1beta as glm  # noqa: E402
from google.generativeai import client as genai_client  # noqa: E402

# The operation stays unfinished at least this long: the server queues the job and a separate
# `tunesmith worker` starts only then (as behind a busy worker), whatever the machine's speed;
# then the job runs its steps for real.
UNFINISHED_SECONDS = 60.0
DATA = [{"text_input": str(i), "output": str(i + 1)} for i in range(20)]


@pytest.fixture(scope="module")
def keyed_queue(tmp_path_factory, tiny_model_dir):
    """A server with one API key, default limits and no worker of its own: ``(server, key)``."""
    home = tmp_path_factory.mktemp("polling-home")
    env = server_env(home, str(tiny_model_dir))
    env.pop("TUNESMITH_REQUESTS_PER_MINUTE", None)  # the default, whatever the caller's shell
    created = tunesmith("keys", "create", "polling", env=env)
    assert created.returncode == 0, created.stderr
    server = Server(home, env, "--no-worker")
    yield server, created.stdout.strip()
    server.stop()


@pytest.mark.slow
def test_wait_bar_for_a_minute_then_result_and_generate(keyed_queue):
    server, key = keyed_queue
    genai.configure(api_key=key, transport="rest", client_options={"api_endpoint": server.url})
    workers: list[subprocess.Popen] = []

    def start_worker():
        cmd = [sys.executable, "-m", "tunesmith.cli", "worker"]
        workers.append(subprocess.Popen(cmd, env=server.env, stdout=subprocess.DEVNULL))

    timer = threading.Timer(UNFINISHED_SECONDS, start_worker)
    try:
        op = genai.create_tuned_model(
            source_model="models/text-bison-001",
            training_data=DATA,
            id="polled-for-a-minute",
            epoch_count=2,
            batch_size=2,
        )
        timer.start()
        for _ in op.wait_bar():  # as the README writes it: polls without sleeping
            pass
        model = op.result()
        assert model.state == glm.TunedModel.State.ACTIVE
        assert [s["step"] for s in model.tuning_task.snapshots][-1] == 20

        gm = genai.GenerativeModel("tunedModels/polled-for-a-minute")
        config = genai.GenerationConfig(temperature=0, max_output_tokens=4)
        answer = gm.generate_content("3", generation_config=config)
        assert answer.candidates and answer.candidates[0].finish_reason
        # The key's budget is intact for its other calls, too.
        listed = [m.name for m in genai.list_tuned_models()]
        assert "tunedModels/polled-for-a-minute" in listed
    finally:
        timer.cancel()
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=60)
        genai_client._client_manager.clients.clear()
