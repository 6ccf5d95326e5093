"""A fine-tuning job through OpenAI's client over a real socket against ``tunesmith serve``
on the packaged model (slow): the job is the tuned model ``tunesmith models list`` shows and
google-generativeai's ``get_tuned_model`` reads, with the same loss history."""

from __future__ import annotations

import json
import time

import openai
import pytest

from tunesmith_server import Server, server_env, tunesmith

genai = pytest.importorskip("google.generativeai")


@pytest.mark.slow
def test_a_fine_tuning_job_on_the_packaged_model(tmp_path, converted_base_models):
    home = tmp_path / "real-home"
    home.mkdir()
    (home / "base-models").symlink_to(converted_base_models, target_is_directory=True)
    env = server_env(home)
    r = tunesmith("keys", "create", "ada-key", "--user", "ada", env=env)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    server = Server(home, env)
    try:
        client = openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key=key, max_retries=0)
        capitals = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid")] * 4
        data = "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": "Answer with the capital only."},
                        {"role": "user", "content": f"Capital of {country}?"},
                        {"role": "assistant", "content": city},
                    ]
                }
            )
            + "\n"
            for country, city in capitals
        )
        f = client.files.create(file=("capitals.jsonl", data.encode()), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model="smollm2-135m-instruct",
            training_file=f.id,
            suffix="capitals",
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 6}},
            },
        )
        deadline = time.monotonic() + 900
        while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in (
            "succeeded",
            "failed",
            "cancelled",
        ):
            assert time.monotonic() < deadline, job.status
            time.sleep(1)
        assert job.status == "succeeded", job.error
        assert job.fine_tuned_model == f"ft:smollm2-135m-instruct:ada:capitals:{job.id}"
        events = client.fine_tuning.jobs.list_events(job.id)
        losses = [e.data["train_loss"] for e in events if e.type == "metrics"][::-1]
        assert len(losses) == 2  # 12 examples / 6, one epoch
        (ckpt,) = client.fine_tuning.jobs.checkpoints.list(job.id).data
        assert ckpt.fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-2"
        answer = client.chat.completions.create(
            model=job.fine_tuned_model,
            messages=[{"role": "user", "content": "Capital of Italy?"}],
            temperature=0,
            max_tokens=8,
        )
        assert answer.choices[0].message.content.strip()

        tuned_id = job.id.removeprefix("ftjob-")
        listed = tunesmith("models", "list", env=env)
        assert listed.returncode == 0, listed.stderr
        assert tuned_id in listed.stdout

        genai.configure(api_key=key, transport="rest", client_options={"api_endpoint": server.url})
        model = genai.get_tuned_model(f"tunedModels/{tuned_id}")
        assert model.display_name == "capitals" and model.state.name == "ACTIVE"
        history = [s["mean_loss"] for s in model.tuning_task.snapshots]
        assert history == pytest.approx(losses)
    finally:
        from google.generativeai import client as genai_client

        genai_client._client_manager.clients.clear()
        server.stop()
