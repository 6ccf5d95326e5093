"""The fast engine on the tiny model: same loss, same results, base reused cleanly."""

from __future__ import annotations

import dataclasses
import gc
import os
import weakref
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.engine import models, recipe
from tunesmith.engine.batching import IGNORE, collate
from tunesmith.engine.prompting import PromptFormat

EXAMPLES = [(str(i), str(i + 1)) for i in range(1, 13)] + [("one two", "three"), ("ten", "11")]


def _recipe(tiny_model_dir: Path, out: Path, **kw) -> recipe.Recipe:
    kw.setdefault("epoch_count", 2)
    kw.setdefault("batch_size", 3)
    return recipe.Recipe(base_dir=tiny_model_dir, examples=EXAMPLES, output_dir=out, **kw)


def _run(r: recipe.Recipe) -> tuple[list[float], dict[str, torch.Tensor]]:
    losses: list[float] = []
    recipe.run(r, lambda rep: losses.append(rep.mean_loss) or True)
    return losses, load_file(r.output_dir / "adapter_model.safetensors")


def test_prompt_tokens_are_masked_out_of_the_loss(tiny_model_dir):
    tok = recipe.load_tokenizer(tiny_model_dir)
    fmt = PromptFormat("{input}\n", tok)
    ids, labels = recipe.encode(tok, fmt, "one two", "three", 64)
    prompt_len = len(tok(fmt.prompt("one two"), add_special_tokens=False)["input_ids"])
    assert labels[:prompt_len] == [IGNORE] * prompt_len
    assert labels[prompt_len:] == ids[prompt_len:] and labels[-1] == tok.eos_token_id


@pytest.mark.parametrize("bf16", [False, True])
def test_target_only_loss_equals_the_models_own_loss(tiny_model_dir, bf16):
    tok = recipe.load_tokenizer(tiny_model_dir)
    fmt = PromptFormat(None, tok)
    rows = [recipe.encode(tok, fmt, i, o, 64) for i, o in EXAMPLES[:4]]
    ids, labels, mask = collate(rows, tok.pad_token_id)
    model = models.load_model(tiny_model_dir)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        ours = models.target_loss(model, ids, mask, labels)
        theirs = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-2 if bf16 else 1e-5)


def test_a_run_repeats_exactly_with_its_seed(tiny_model_dir, tmp_path):
    models.clear_cache()
    a = _run(_recipe(tiny_model_dir, tmp_path / "a", seed=3))
    b = _run(_recipe(tiny_model_dir, tmp_path / "b", seed=3))
    c = _run(_recipe(tiny_model_dir, tmp_path / "c", seed=4))
    assert a[0] == b[0] and a[0] != c[0]
    assert all(torch.equal(a[1][k], b[1][k]) for k in a[1])


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_the_cached_base_gives_what_a_fresh_process_gives(tiny_model_dir, tmp_path, precision):
    fresh = []
    for name in ("x", "y"):  # each as if in a new worker: nothing cached
        models.clear_cache()
        fresh.append(
            _run(
                _recipe(
                    tiny_model_dir,
                    tmp_path / f"fresh-{name}",
                    seed=len(fresh),
                    mixed_precision=precision,
                )
            )
        )
    models.clear_cache()
    cached = [
        _run(_recipe(tiny_model_dir, tmp_path / f"cached-{i}", seed=i, mixed_precision=precision))
        for i in range(2)
    ]  # one worker, two jobs, one base
    for (fl, fw), (cl, cw) in zip(fresh, cached, strict=True):
        assert fl == cl
        assert fw.keys() == cw.keys() and all(torch.equal(fw[k], cw[k]) for k in fw)


def test_the_base_is_loaded_once_and_left_clean(tiny_model_dir, tmp_path, monkeypatch):
    models.clear_cache()
    loads = []
    real = models.load_model
    monkeypatch.setattr(recipe, "load_model", lambda d: loads.append(d) or real(d))
    _run(_recipe(tiny_model_dir, tmp_path / "a", mixed_precision="no"))
    _run(_recipe(tiny_model_dir, tmp_path / "b", mixed_precision="no"))
    assert len(loads) == 1
    (base,) = models._cache.values()
    assert not any("lora" in name for name, _ in base.named_modules())
    assert not any(p.requires_grad for p in base.parameters())
    pristine = real(tiny_model_dir).state_dict()
    assert all(torch.equal(t, pristine[k]) for k, t in base.state_dict().items())


def test_the_tokenizer_is_loaded_once_per_base_until_its_files_change(
    tiny_model_dir, tmp_path, monkeypatch
):
    recipe._load_tokenizer.cache_clear()
    loads = []
    real = recipe.load_tokenizer
    monkeypatch.setattr(recipe, "load_tokenizer", lambda d: loads.append(d) or real(d))
    _run(_recipe(tiny_model_dir, tmp_path / "a", epoch_count=1))
    _run(_recipe(tiny_model_dir, tmp_path / "b", epoch_count=1))
    assert len(loads) == 1
    config = tiny_model_dir / "tokenizer_config.json"
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    _run(_recipe(tiny_model_dir, tmp_path / "c", epoch_count=1))
    assert len(loads) == 2


def test_a_worker_keeps_its_base_from_full_collections_and_frees_it_when_dropped(
    tiny_model_dir, tmp_path, monkeypatch
):
    models.clear_cache()
    _run(_recipe(tiny_model_dir, tmp_path / "a", epoch_count=1))
    assert gc.get_freeze_count() == 0  # only a worker process asks for it
    models.clear_cache()
    monkeypatch.setattr(models, "_settling", True)
    try:
        r = _recipe(tiny_model_dir, tmp_path / "b", epoch_count=1, mixed_precision="no")
        model = models.prepare(r, bf16=False)
        assert gc.get_freeze_count() > 0  # the base loaded, frozen before the adapter was made
        adapter = weakref.ref(model)
        base = weakref.ref(model.get_base_model())
        models.release(model)
        del model
        gc.collect()
        assert adapter() is None  # the job's adapter (its fused groups are cycles) is freed
        cached = base()
        assert cached is not None and cached in models._cache.values()
        cached.__dict__["cycle"] = [cached]  # as compiled layers refer back to their layer
        del cached
        models.clear_cache()
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert base() is None  # a dropped base does not stay frozen forever
    finally:
        gc.unfreeze()


def test_bf16_keeps_float32_master_weights_over_a_bf16_frozen_base(tiny_model_dir, tmp_path):
    models.clear_cache()
    r = _recipe(tiny_model_dir, tmp_path / "a", mixed_precision="bf16")
    model = models.prepare(r, bf16=True)
    try:
        trainable = [p for p in model.parameters() if p.requires_grad]
        assert trainable and all(p.dtype == torch.float32 for p in trainable)
        frozen_linear = model.get_base_model().model.layers[0].mlp.up_proj.base_layer
        assert frozen_linear.weight.dtype == torch.bfloat16
        assert model.get_input_embeddings().weight.dtype == torch.float32
    finally:
        models.release(model)


@pytest.mark.parametrize(
    ("machine", "extensions", "fast"),
    [
        ("x86_64", {"avx512_f": True, "avx512_vnni": True}, False),  # Ice Lake: emulated bf16
        ("x86_64", {"avx2": True}, False),
        ("x86_64", {"avx512_f": True, "avx512_bf16": True}, True),  # Zen 4 and later
        ("x86_64", {"avx512_bf16": True, "amx_tile": True}, True),  # Sapphire Rapids on
        ("AMD64", {"amx_tile": True}, True),
    ],
)
def test_auto_precision_is_bf16_only_where_the_cpu_has_bf16_instructions(
    monkeypatch, tmp_path, machine, extensions, fast
):
    # oneDNN itself says yes to bf16 on any AVX-512 CPU, emulating what it lacks: a LoRA run
    # on an Ice Lake Xeon took 2.2 times as long in bf16 as in float32 (benchmarks/precision.py).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(recipe.platform, "machine", lambda: machine)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: extensions)
    assert recipe.bf16_supported() is fast
    auto = recipe.Recipe(base_dir=tmp_path, examples=[], output_dir=tmp_path)
    assert recipe._uses_bf16(auto) is fast
    assert recipe._uses_bf16(dataclasses.replace(auto, mixed_precision="bf16"))


def test_a_stopped_run_still_returns_the_base_clean(tiny_model_dir, tmp_path):
    models.clear_cache()
    with pytest.raises(recipe.Stopped):
        recipe.run(_recipe(tiny_model_dir, tmp_path / "a"), lambda rep: rep.step < 2)
    (base,) = models._cache.values()
    assert not any("lora" in name for name, _ in base.named_modules())
    assert models._in_use == set()


def test_a_run_holds_the_machine_training_lock_until_it_ends(tiny_model_dir, tmp_path, monkeypatch):
    """Serving on the same cores decodes on fewer threads while any process trains
    (tunesmith.engine.cores): another process sees the run, and nothing after it, even when
    it was stopped. (The lock's file is this test's own: other runs on the machine stay out.)"""
    import subprocess
    import sys

    from tunesmith.engine import cores

    lock = tmp_path / "training.lock"
    monkeypatch.setattr(cores, "training_lock", lambda: lock)

    def seen_from_another_process() -> bool:
        code = "import sys; from tunesmith.engine.cores import held; print(held(sys.argv[1]))"
        out = subprocess.run(
            [sys.executable, "-c", code, str(lock)], capture_output=True, text=True
        )
        return out.stdout.strip() == "True"

    assert not cores.training_now()
    seen: list[bool] = []
    recipe.run(
        _recipe(tiny_model_dir, tmp_path / "a", epoch_count=1),
        lambda _r: seen.append(cores.training_now() and seen_from_another_process()) or True,
    )
    assert seen and all(seen)
    assert not cores.training_now() and not seen_from_another_process()
    with pytest.raises(recipe.Stopped):
        recipe.run(_recipe(tiny_model_dir, tmp_path / "b"), lambda _r: False)
    assert not cores.training_now()


def test_a_run_trains_where_the_training_lock_cannot_be_taken(
    tiny_model_dir, tmp_path, monkeypatch
):
    from tunesmith.engine import cores

    monkeypatch.setattr(cores, "training_lock", lambda: tmp_path / "no-such-folder" / "lock")
    out = recipe.run(_recipe(tiny_model_dir, tmp_path / "a", epoch_count=1))
    assert (out / "adapter_model.safetensors").is_file()
    assert not cores.training_now()


def test_a_worker_process_collects_again_once_its_imports_are_frozen(monkeypatch):
    """A worker process imports with the collector off (``tunesmith.jobs.worker_command``);
    settling for its jobs must turn it back on, or every job's reference cycles would pile up."""
    monkeypatch.setattr(models, "_settling", False)
    gc.disable()
    try:
        models.settle_between_jobs()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # what was imported, out of later collections' walks
        assert models._settling
    finally:
        gc.enable()
        gc.unfreeze()
