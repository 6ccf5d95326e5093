"""Compiled decoder layers: the same training as the eager path, compiled once per worker."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.engine import models, recipe

EXAMPLES = [(str(i), str(i + 1)) for i in range(1, 13)] + [("one two", "three"), ("ten", "11")]


@pytest.fixture(autouse=True)
def fresh_worker():
    """Each test starts as a fresh worker, and leaves no compiled base to later tests."""
    models.clear_cache()
    yield
    models.clear_cache()


def _run(tiny_model_dir: Path, out: Path, **kw) -> tuple[list[float], dict[str, torch.Tensor]]:
    losses: list[float] = []
    kw.setdefault("mixed_precision", "no")  # float32: the two paths agree to rounding
    r = recipe.Recipe(
        base_dir=tiny_model_dir,
        examples=EXAMPLES,
        output_dir=out,
        epoch_count=2,
        batch_size=3,
        **kw,
    )
    recipe.run(r, lambda rep: losses.append(rep.mean_loss) or True)
    return losses, load_file(out / "adapter_model.safetensors")


def _graphs_compiled() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


@pytest.mark.slow
def test_compiled_runs_train_like_eager_ones_and_compile_once_per_worker(tiny_model_dir, tmp_path):
    eager_losses, eager_adapter = _run(tiny_model_dir, tmp_path / "eager", compile=False)

    first = _run(tiny_model_dir, tmp_path / "first", compile=True)
    # The same arithmetic, fused differently: equal up to float32 rounding, step by step
    # (in bf16 they differ by bf16 rounding; the speed benchmark compares their accuracy).
    assert first[0] == pytest.approx(eager_losses, rel=1e-5)
    for name, tensor in eager_adapter.items():
        torch.testing.assert_close(first[1][name], tensor, rtol=1e-4, atol=1e-6, msg=name)

    # A later job on this worker (the default choice, with validation scoring) reuses the
    # compiled layers: nothing new is compiled, and it repeats the first job exactly.
    graphs = _graphs_compiled()
    again = _run(tiny_model_dir, tmp_path / "again", validation_examples=EXAMPLES[:3])
    assert _graphs_compiled() == graphs
    assert again[0] == first[0]
    assert all(torch.equal(again[1][k], first[1][k]) for k in first[1])

    # A job that asks for the eager path on the compiled base gets exactly the eager run, and
    # the compiled layers still serve the job after it.
    eager_again = _run(tiny_model_dir, tmp_path / "eager-again", compile=False)
    assert eager_again[0] == eager_losses
    assert all(torch.equal(eager_again[1][k], eager_adapter[k]) for k in eager_adapter)
    last = _run(tiny_model_dir, tmp_path / "last")
    assert last[0] == first[0]
    assert _graphs_compiled() == graphs


@pytest.mark.parametrize("bf16", [True, False], ids=["bf16", "float32"])
def test_only_runs_long_enough_to_pay_compile_a_fresh_worker_s_layers(
    tiny_model_dir, tmp_path, bf16
):
    r = recipe.Recipe(base_dir=tiny_model_dir, examples=EXAMPLES, output_dir=tmp_path)
    short = models.prepare(r, bf16, longest=8, tokens=models.COMPILE_MIN_TOKENS - 1)
    assert not models.compiled(short)
    models.release(short)
    long = models.prepare(r, bf16, longest=8, tokens=models.COMPILE_MIN_TOKENS)
    assert models.compiled(long)
    models.release(long)
    # Once compiled, the worker's base serves short runs of that kind compiled too: the cost
    # is paid. Longer examples take another attention, which would compile the layers anew.
    again = models.prepare(r, bf16, longest=8, tokens=1)
    assert models.compiled(again)
    models.release(again)
    longer = models.prepare(r, bf16, longest=1 + models.EAGER_ATTENTION_MAX_LEN, tokens=1)
    assert not models.compiled(longer)
    models.release(longer)


def test_shorter_bf16_runs_compile_what_setup_compiled_ahead(tiny_model_dir, tmp_path, monkeypatch):
    """Where setup compiled a run's layers ahead, compiling only loads them: a bf16 run pays
    for that from fewer tokens. Anything setup did not compile keeps the higher bar."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "compiled"))
    tokens = models.COMPILE_MIN_TOKENS_AHEAD
    r = recipe.Recipe(base_dir=tiny_model_dir, examples=EXAMPLES, output_dir=tmp_path)

    def compiles(job=r, bf16=True, longest=8) -> bool:
        model = models.prepare(job, bf16, longest=longest, tokens=tokens)
        models.release(model)
        models.clear_cache()  # the next question is a fresh worker's again
        return models.compiled(model)

    assert not compiles()  # nothing compiled ahead yet
    models.note_compiled_ahead(r, bf16=True)
    assert compiles()
    assert not compiles(bf16=False)
    assert not compiles(longest=models.EAGER_ATTENTION_MAX_LEN + 1)  # another attention
    assert not compiles(job=replace(r, lora_rank=16))
    assert not compiles(job=replace(r, prompt_template="<s>{text_input}</s>"))
    # tunesmith upgraded (models.py or the grouping pass changed) without setup compiling again
    monkeypatch.setattr(models, "_compiling_code", lambda: "another version")
    assert not compiles()


@pytest.mark.slow
def test_a_readied_worker_s_first_job_runs_the_layers_compiled_ahead(
    tiny_model_dir, tmp_path, monkeypatch
):
    """A worker waiting for its first job readies itself (``recipe.ready``): it loads the base
    and, where setup compiled the layers ahead, their code, so that job, however short, runs
    compiled without compiling or loading anything more. A job of another kind (longer
    examples, another attention) runs eagerly rather than recompile."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "compiled"))
    monkeypatch.setattr(recipe, "bf16_supported", lambda: True)  # setup compiles bf16 runs
    loads: list[Path] = []
    monkeypatch.setattr(recipe, "load_model", lambda d: loads.append(d) or models.load_model(d))

    assert not recipe.ready(tiny_model_dir, None, tmp_path / "a")  # nothing compiled ahead yet
    recipe.compile_ahead(tiny_model_dir)
    assert recipe.ready(tiny_model_dir, None, tmp_path / "b")
    loaded, graphs = len(loads), _graphs_compiled()

    short = recipe.Recipe(tiny_model_dir, EXAMPLES[:4], tmp_path / "first", epoch_count=1)
    first = models.prepare(short, True, recipe.load_model, longest=8, tokens=10)
    assert models.compiled(first)
    models.release(first)
    other = models.prepare(
        short, True, recipe.load_model, longest=1 + models.EAGER_ATTENTION_MAX_LEN
    )
    assert not models.compiled(other)
    models.release(other)

    recipe.run(short)
    assert (tmp_path / "first" / "adapter_model.safetensors").is_file()
    assert (len(loads), _graphs_compiled()) == (loaded, graphs)


X86_64 = platform.machine() in ("x86_64", "AMD64")  # the instruction sets checked are x86's

LATER_WORKER = """
import json, sys
from pathlib import Path
from unittest import mock
from torch._dynamo.utils import counters
from torch._inductor.cpu_vec_isa import VecISA
from tunesmith.engine import recipe
pairs = [(str(i), str(i + 1)) for i in range(1, 13)]
# The CPU's vector instruction sets: inductor probes each of them in a new Python process.
with mock.patch.object(VecISA, "_probe_load", autospec=True, side_effect=VecISA._probe_load) as probe:
    recipe.run(recipe.Recipe(Path(sys.argv[1]), pairs, Path(sys.argv[2]), batch_size=3,
                             compile=True))
print(json.dumps({"made": counters["inductor"]["fxgraph_cache_miss"],
                  "loaded": counters["inductor"]["fxgraph_cache_hit"]
                  + counters["aot_autograd"]["autograd_cache_hit"],
                  "traced again": counters["aot_autograd"]["autograd_cache_bypass"],
                  "probed": sorted({str(call.args[0]) for call in probe.call_args_list})}))
"""


@pytest.mark.slow
def test_layers_compiled_ahead_are_loaded_by_a_later_worker(tiny_model_dir, tmp_path):
    """`python -m tunesmith.jobs.prepare --compile` (make setup) keeps the compiled layers in
    the installation's cache of compiled code; a later worker's first compiled run loads every
    graph from there instead of compiling it cold."""
    env = {**os.environ, "TUNESMITH_SHARED_BASE_MODELS": str(tmp_path / "shared")}
    env["TUNESMITH_HOME"] = str(tmp_path / "home")
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)  # this process's own, set by tunesmith.engine
    prepare = [sys.executable, "-m", "tunesmith.jobs.prepare", str(tiny_model_dir), "--compile"]
    done = subprocess.run(prepare, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"kept in {tmp_path / 'shared' / '.compiled'}" in done.stdout
    later = [sys.executable, "-c", LATER_WORKER, str(tiny_model_dir), str(tmp_path / "run")]
    done = subprocess.run(later, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["made"] == 0 and report["loaded"] > 0
    assert report["traced again"] == 0  # the layers' backward too: 4 s on the packaged base
    if X86_64:
        # Inductor checks each vector instruction set the CPU reports in a new Python process
        # (0.3 s each); those that passed at setup are trusted. AVX2, which it checks no further:
        assert "avx2" not in report["probed"]


@pytest.mark.skipif(not X86_64, reason="the instruction sets checked are x86's")
def test_a_cpu_whose_instruction_set_fails_the_check_is_checked_every_time(tmp_path, monkeypatch):
    from torch._inductor import config, cpu_vec_isa

    monkeypatch.setattr(config.cpp, "vec_isa_ok", None)
    checks = []
    monkeypatch.setattr(cpu_vec_isa, "valid_vec_isa_list", lambda: checks.append(1) or [])
    for _ in range(2):
        models._trust_vector_isas(tmp_path)
    assert len(checks) == 2 and list(tmp_path.iterdir()) == []
    assert config.cpp.vec_isa_ok is None  # inductor keeps checking, and picks no vector code
