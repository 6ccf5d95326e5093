"""End to end on the real packaged base model (SmolLM2-135M-Instruct): the seed's flow."""

from __future__ import annotations

import pytest

import tunesmith as ts
from tunesmith.demo import SEED_EXAMPLES

pytestmark = pytest.mark.slow

SEED = SEED_EXAMPLES


def test_seed_number_generator_tunes_and_answers_differently(real_home):
    op = ts.create_tuned_model(
        source_model="models/smollm2-135m-instruct",
        training_data=[{"text_input": i, "output": o} for i, o in SEED],
        id="number-generator",
        epoch_count=3,
        batch_size=2,
        learning_rate=0.001,
    )
    assert op.metadata.total_steps == 23
    model = op.result(timeout=900)
    assert model.state is ts.TunedModelState.ACTIVE
    losses = op.history["mean_loss"].tolist()
    assert len(losses) == 23 and sum(losses[-5:]) < sum(losses[:5]) / 2

    def answer(name: str, prompt: str) -> str:
        return ts.generate_text(
            model=name, prompt=prompt, temperature=0, max_output_tokens=12
        ).result

    base = answer("models/smollm2-135m-instruct", "9")
    tuned = answer(model.name, "9")
    assert tuned != base
    # The tuned model answers tersely, like its examples; the base model chats.
    assert len(tuned) < len(base) and len(tuned.split()) <= 3
