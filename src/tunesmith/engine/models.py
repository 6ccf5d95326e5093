"""The model a run trains, made fast and cheap to set up, and the loss it is trained on.

* **One base model per worker process.** Loading a base takes seconds; a worker runs job
  after job on the same base, so :func:`prepare` keeps the last frozen base in memory, wraps
  it in a fresh LoRA adapter per job and :func:`release` unwraps it afterwards (peft's
  ``unload`` without merging), leaving the base exactly as loaded. Full tuning changes the
  base's own weights, so it always loads a private copy.
* **bf16 where the processor is fast at it, fp32 master weights.** Under bf16 autocast every
  frozen linear weight would be cast to bf16 at every step; the cached base keeps them in
  bf16 once instead (the same numbers autocast would compute with). Trainable parameters, the
  embeddings and the norms stay float32, so the optimizer updates full-precision weights and
  the residual stream between layers keeps float32 precision (a bf16 one measurably trained
  worse on the speed benchmark: final loss 0.05 against 0.008).
* **Fewer, larger operations for LoRA.** Projections that read the same input (q/k/v, gate/up)
  run as one autograd node with their LoRA matrices stacked (:mod:`.fused_lora`); compiled
  layers get the same grouping of the low-rank products from a pass over the compiler's graph.
* **Short batches packed: no padding, the shared start once.** Up to
  :data:`EAGER_ATTENTION_MAX_LEN` tokens a batch runs as one sequence of its real tokens: the
  start its rows share (a chat template's system prompt and turn markers) once, then each
  row's rest (:func:`pack_batch`). The linear layers, most of a step, then compute neither
  padding nor the start again (at batch 8 of short pairs under a chat template, half the
  work). Attention lays the packed queries, keys and values out as rows again and runs plain
  (``eager``) attention on each row's own tokens (:data:`ROWS_ATTENTION`): for a few dozen
  tokens the fused CPU attention's backward costs more than the matmuls it replaces, and one
  score matrix over the whole packed batch would cost as much again as the padding saved. The
  same loss and gradients as the rows apart. Beyond that length, the model's own attention
  on padded rows.
* **Logits only where there is a target.** The loss needs the vocabulary projection only at
  the output tokens; the prompt (most of each example) skips it and its backward.
* **Compiled decoder layers for long runs, once per worker.** Besides the matmuls, a CPU step
  is mostly small element-wise operations (norms, rotary, activations, casts), each with its
  own dispatch and autograd node. ``torch.compile`` fuses them, which made the speed
  benchmark's run a tenth to a fifth faster, but compiling costs seconds with the on-disk
  inductor cache warm (a minute or more cold: 63 s on the AMX benchmark machine). The first
  layer runs eagerly (:func:`_layers_to_compile`), so all the others share one graph. The compiled
  layers belong to the cached base, so they are compiled once per worker and every later job
  on that base reuses them without recompiling (the LoRA layers peft adds are graph inputs,
  not constants). A run compiles only if its tokens make that pay (:data:`COMPILE_MIN_TOKENS`,
  :data:`COMPILE_MIN_TOKENS_AHEAD`) or the base's layers already are compiled for its kind of
  run (attention and LoRA rank); other runs take the eager path with :mod:`.fused_lora`'s
  autograd node, whose state between calls would break the compiler's graph: compiled layers
  regroup in the graph instead (:class:`.fused_lora.GroupLoRAPass`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from . import fused_lora, unmap
from .batching import IGNORE

# Architectures whose logits are exactly ``lm_head(final hidden state)``, possibly soft-capped;
# others (logit scaling, extra heads) fall back to the model's own loss.
_PLAIN_HEAD = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "olmo2"}

EAGER_ATTENTION_MAX_LEN = 256

COMPILE_MIN_TOKENS = 30_000
"""Real tokens (all epochs) from which a run compiles the layers of a base not yet compiled,
where the compiled code may not be in the cache yet. Compiled steps saved 0.3-0.9 ms per
token on the 2-core benchmark machines, so a run this long saves 9-27 s: one to five warm
compiles. A cold one (once per machine while inductor's cache lasts: a new base, a prompt
template or LoRA rank not compiled before, examples long enough for another attention)
costs a minute or more; the runs after it get it back."""

COMPILE_MIN_TOKENS_AHEAD = 10_000
"""The same for a bf16 run that setup compiled ahead (:func:`note_compiled_ahead`: the same
base, prompt template and LoRA rank, examples short enough for plain attention), where
compiling loads the code: 2.5-3 s at the first step on the AMX Xeon, where compiled steps
save about 0.5 ms a token. Whole runs in a fresh process there (packaged base): 100 examples
x 3 epochs (5,900 tokens) 19.3 s compiled against 18.8 s eager, 200 x 3 (11,700) 31.1 s
against 33.3 s, 900 x 1 (17,500) 41.7 s against 49.1 s. Not in float32 (a CPU without fast
bf16), where compiled steps gained nothing measurable on the AVX2 EPYC (171 tokens/s
compiled, 176 eager)."""

# peft asks transformers a deprecated question each time it wraps a model; the warning reaches
# users' terminals on every generation and says nothing they can act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

_lock = threading.Lock()
_cache: dict[tuple, torch.nn.Module] = {}  # at most one frozen base
_in_use: set[int] = set()  # ids of cached bases lent to a running job


def load_model(base_dir: Path):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    # Progress bars and deprecation chatter from a library call land in the user's terminal.
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # safetensors only: a folder's pickle weights (pytorch_model.bin) are never unpickled.
    model = AutoModelForCausalLM.from_pretrained(
        base_dir, dtype=torch.float32, use_safetensors=True
    )
    return model.to(dev)  # type: ignore[arg-type]  # transformers' stub of `to` lacks self


def prepare(
    recipe,
    bf16: bool,
    load: Callable[[Path], torch.nn.Module] = load_model,
    longest: int | None = None,
    tokens: int = 0,
):
    """The trainable model for ``recipe``: LoRA over the cached base, or a full private copy.

    Seeds torch just before the adapter is made, so a cached base and a fresh load give the
    same initial adapter. ``load`` is part of the cache key: a different loader (a test's,
    say) never gets a base another loader made. ``longest`` (tokens) picks the attention;
    ``tokens`` (the run's real tokens, all epochs) and ``recipe.compile`` whether the
    decoder layers run compiled (see :func:`compiled`).
    """
    if recipe.method == "full":
        model = load(recipe.base_dir)
        model.requires_grad_(True)
        return model
    if recipe.method != "lora":
        raise ValueError(f"unknown tuning method '{recipe.method}' (use 'lora' or 'full')")
    from peft import LoraConfig, PeftModel, get_peft_model

    base = _borrow_base(Path(recipe.base_dir), bf16, load)
    try:
        _pick_attention(base, longest)
        torch.manual_seed(recipe.seed)
        if recipe.init_adapter_dir is not None:
            model = PeftModel.from_pretrained(base, recipe.init_adapter_dir, is_trainable=True)
        else:
            config = LoraConfig(
                r=recipe.lora_rank,
                lora_alpha=recipe.lora_alpha,
                lora_dropout=0.0,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(base, config)
    except BaseException:
        _return_base(base, clean=False)
        raise
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()  # master weights in fp32 even over a bf16 base
    lora = model.peft_config["default"]  # also a continued adapter's, whose rank is its own
    run = (base.config._attn_implementation, lora.r if isinstance(lora, LoraConfig) else None)
    ahead = functools.partial(compiled_ahead, recipe, bf16, longest)
    compiled = _wants_compile(recipe.compile, base, tokens, ahead, run)
    # torch types Module.__setattr__'s value as Tensor | Module; this is a plain flag.
    model._tunesmith_runs_compiled = compiled  # type: ignore[assignment]
    if model._tunesmith_runs_compiled:
        _compile_layers(base, run)
    else:
        with eager(base):  # the probe forward must not compile layers an earlier job compiled
            fused_lora.fuse(model, torch.zeros((1, 4), dtype=torch.long, device=base.device))
    return model


def compiled(model) -> bool:
    """Whether this job's model runs its decoder layers compiled. If not, run it under
    :func:`eager`: its base may carry layers an earlier job compiled."""
    return getattr(model, "_tunesmith_runs_compiled", False)


@contextlib.contextmanager
def eager(model):
    """Inside, ``model``'s compiled decoder layers run their plain forward (validation
    scoring, the fused-LoRA probe, a run that chose not to compile on a base compiled
    earlier). Per model, not torch's global compiler stance: a borrowed base is its job's
    alone, while another thread's job may be running compiled layers of its own."""
    core = _core(model)
    layers = [layer for layer in _decoder_layers(core) if layer._compiled_call_impl is not None]
    calls = [layer._compiled_call_impl for layer in layers]
    for layer in layers:
        layer._compiled_call_impl = None
    try:
        yield
    finally:
        for layer, call in zip(layers, calls, strict=True):
            layer._compiled_call_impl = call


def _wants_compile(choice: bool | None, base, tokens: int, ahead: Callable[[], bool], run) -> bool:
    """``run``: the (attention, LoRA rank) it trains with. Layers an earlier run on this worker
    compiled (or the worker's readying, :func:`..recipe.ready`) serve any later run of the same
    kind for free; one of another kind would recompile them, so it is judged as on a fresh
    worker."""
    if choice is False or not _layers_to_compile(base) or not _can_compile():
        return False
    if choice or tokens >= COMPILE_MIN_TOKENS:
        return True
    if run in getattr(base, "_tunesmith_compiled_for", ()):
        return True
    return tokens >= COMPILE_MIN_TOKENS_AHEAD and ahead()


_COMPILED_AHEAD = "compiled-ahead.json"


def _ahead_key(recipe) -> dict:
    return {
        "base": str(Path(recipe.base_dir).resolve()),
        "prompt_template": recipe.prompt_template,
        "lora_rank": recipe.lora_rank,
        "torch": torch.__version__,
        "code": _compiling_code(),
    }


@functools.cache
def _compiling_code() -> str:
    """The source that decides what the layers compile to (this module and the LoRA grouping
    pass): after an upgrade that changes it, setup's record no longer vouches for the cache
    and shorter runs keep the higher bar until setup compiles ahead again."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(Path(fused_lora.__file__).read_bytes())
    return digest.hexdigest()


def note_compiled_ahead(recipe, bf16: bool) -> None:
    """Record that the layers a bf16 run like ``recipe`` compiles are in :func:`compile_cache`
    (setup compiled them ahead, with short examples), so that shorter runs compile them too
    (:data:`COMPILE_MIN_TOKENS_AHEAD`)."""
    if not bf16:
        return
    known, key = _ahead_record(), _ahead_key(recipe)
    if key not in known:
        with contextlib.suppress(OSError):
            compile_cache().mkdir(parents=True, exist_ok=True)
            (compile_cache() / _COMPILED_AHEAD).write_text(json.dumps([*known, key], indent=1))


def _ahead_record() -> list:
    """What :func:`note_compiled_ahead` recorded; nothing if the record is missing or unreadable."""
    try:
        known = json.loads((compile_cache() / _COMPILED_AHEAD).read_text())
    except (OSError, ValueError):
        return []
    return known if isinstance(known, list) else []


def compiled_ahead(recipe, bf16: bool, longest: int | None) -> bool:
    """Whether setup compiled this run's layers ahead (:func:`note_compiled_ahead`). Not for a
    run that goes on from an adapter, whose rank is the adapter's own."""
    if not bf16 or longest is None or longest > EAGER_ATTENTION_MAX_LEN:
        return False
    return recipe.init_adapter_dir is None and _ahead_key(recipe) in _ahead_record()


def _can_compile() -> bool:
    """Inductor writes C++ on a CPU (needs a compiler) and Triton on a GPU."""
    if torch.cuda.is_available():
        return importlib.util.find_spec("triton") is not None
    return any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++"))


def _compile_layers(base, run) -> None:
    """Compile each decoder layer in place (once: later jobs on this base reuse the code), and
    record that they serve runs of kind ``run`` (see :func:`_wants_compile`).

    Lengths vary from batch to batch, so shapes are dynamic from the start rather than
    recompiled for the second length seen. Layers share one compiled graph."""
    kinds: set[tuple] = getattr(base, "_tunesmith_compiled_for", set())
    base._tunesmith_compiled_for = {*kinds, run}
    if kinds:
        return
    cache = _use_compile_cache()
    if cache is not None:
        _trust_vector_isas(cache)
    # The layers' float attributes (peft's LoRA scaling, the norms' epsilon, dropout rates) are
    # constants. Under dynamic=True dynamo first traces them as symbolic floats, fails, and
    # traces the layer again: half of a warm compile (9 s instead of 16 s here).
    torch._dynamo.config.specialize_float = True
    # Sizes that happen to be equal in the first batch (5 rows of 5 tokens) would otherwise
    # share one symbol, and the next batch, where they differ, would compile the layers again.
    torch.fx.experimental._config.use_duck_shape = False
    # The packed attention's _Gather is an autograd.Function, which AOTAutograd's cache would
    # skip: every fresh worker would trace the layers' backward again (4 s). The cache key is
    # the traced graph, the Function's forward and backward included.
    torch._functorch.config.autograd_cache_allow_custom_autograd_functions = True
    options = {"pre_grad_custom_pass": fused_lora.GroupLoRAPass()}
    for layer in _layers_to_compile(base):
        layer.compile(dynamic=True, options=options)


def compile_cache() -> Path:
    """Where compiled code is kept: ``TORCHINDUCTOR_CACHE_DIR`` if the user set it, else
    beside the installation's shared base models (made for this torch, kept across reboots,
    unlike inductor's default under /tmp). A worker that finds its layers' code there loads
    it instead of compiling anew (a cold compile costs a long job 40 s on the AVX512-BF16
    EPYC, a minute or more elsewhere); ``python -m tunesmith.jobs.prepare --compile`` (``make
    setup``) puts it there before the first job."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from .base_models import shared_dir

    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    # Importing peft, say, sets the variable to inductor's default: not the user's choice.
    if chosen and os.path.abspath(chosen) != os.path.abspath(default_cache_dir()):
        return Path(chosen)
    return shared_dir() / ".compiled"


def _use_compile_cache() -> Path | None:
    """Point inductor at :func:`compile_cache` (it reads the variable whenever it looks in
    its cache) and return it, unless that folder cannot be written: then inductor's own
    default, and None."""
    folder = compile_cache()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return None
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    return folder


_VECTOR_ISAS_CHECKED = "vector-isas.json"


def _trust_vector_isas(cache: Path) -> None:
    """Skip inductor's check of the CPU's vector instruction sets once it has passed here.

    Every process that compiles builds a probe for each instruction set the CPU reports and
    loads it in a new Python process, even when all its code comes from the cache: four such
    processes, 1.3 s of a 3.5 s warm compile on the AMX Xeon. The first compiling process of
    an installation runs the check; if every set passes, it says so in ``cache`` for this CPU
    and torch, and it and every later process tell inductor the sets are fine
    (``cpp.vec_isa_ok``). That setting is part of inductor's cache key, so the code compiled
    ahead at setup and a worker's lookups agree. Where a set fails, nothing is recorded and
    every process checks, as inductor does by default."""
    import platform

    try:
        from torch._inductor import config as inductor_config
        from torch._inductor import cpu_vec_isa
    except ImportError:  # another torch's layout: inductor checks as usual
        return
    if platform.machine() not in ("x86_64", "AMD64"):
        return
    # The sets inductor would probe: those whose flags the CPU reports (its own filter).
    flags = cpu_vec_isa.x86_isa_checker()
    reported = sorted(
        str(isa)
        for isa in cpu_vec_isa.supported_vec_isa_list
        if all(flag in flags for flag in str(isa).split())
    )
    seen = {"torch": torch.__version__, "passed": reported}
    record = cache / _VECTOR_ISAS_CHECKED
    try:
        known = json.loads(record.read_text()) == seen
    except (OSError, ValueError):
        known = False
    if not known:
        if sorted(str(isa) for isa in cpu_vec_isa.valid_vec_isa_list()) != reported:
            return
        with contextlib.suppress(OSError):
            record.write_text(json.dumps(seen))
    inductor_config.cpp.vec_isa_ok = True


def _decoder_layers(base) -> list[torch.nn.Module]:
    """The repeated blocks to compile; none for an architecture that does not name them
    ``layers`` (it trains eagerly)."""
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    return list(getattr(decoder, "layers", None) or [])


def _layers_to_compile(base) -> list[torch.nn.Module]:
    """All decoder layers but the first. The first one's input (the embeddings of a frozen
    base) needs no gradient, the others' do; dynamo guards on that, so compiling the first
    layer too costs a second graph (1.4-1.6 s of a 5 s warm compile on the AVX512-BF16 EPYC)
    to speed up one layer in thirty."""
    return _decoder_layers(base)[1:]


def release(model) -> None:
    """After a run: take the adapter off the cached base so the next job gets it clean."""
    if not hasattr(model, "unload"):
        return  # fully tuned private copy: nothing cached
    base = model.unload()  # removes the LoRA layers without merging them
    if hasattr(base, "peft_config"):
        del base.peft_config
    _return_base(base, clean=True)


def _pick_attention(base, longest: int | None) -> None:
    original = base.config._attn_implementation
    if not hasattr(base, "_tunesmith_attention"):
        base._tunesmith_attention = original  # what the model chose when loaded
    short = longest is not None and longest <= EAGER_ATTENTION_MAX_LEN
    want = base._tunesmith_attention
    if short and not torch.cuda.is_available():
        # The row-wise form where target_loss packs: models whose attention module calls
        # their file's own eager_attention_forward, as these do.
        want = ROWS_ATTENTION if base.config.model_type in _PLAIN_HEAD else "eager"
        _register_rows_attention()
    if want != original:
        base.set_attn_implementation(want)


def _borrow_base(base_dir: Path, bf16: bool, load):
    key = (str(base_dir.resolve()), bf16, load)
    with _lock:
        base = _cache.get(key)
        if base is not None and id(base) not in _in_use:
            _in_use.add(id(base))
            return base
    base = load(base_dir)
    base.requires_grad_(False)
    if bf16:
        linears_to_bf16(base)
    with _lock:
        kept = key not in _cache or id(_cache[key]) not in _in_use  # else a one-off copy
        if kept:
            _drop_cached()  # one base per worker: a new base evicts the old
            _cache[key] = base
            _in_use.add(id(base))
    if kept:
        settle()  # before the job's adapter exists: only what outlives the job is kept out
    return base


_settling = False


def settle_between_jobs() -> None:
    """Have this process keep what outlives a job out of Python's full garbage collections:
    for a worker process, which keeps one base and its compiled layers from job to job.

    A full collection walks every object the process holds: after torch, transformers and a
    compiled base, 0.2 s on the AMX Xeon, and the runs' allocations start one or two in every
    job (a 200 x 1 job's steps take 0.25 s each there). :func:`settle`, called once the cached
    base is loaded and once the worker has readied itself, collects and then freezes what is
    alive (``gc.freeze``), so later collections walk only what the jobs make. Dropping the
    cached base unfreezes everything, so the dropped base's reference cycles (compiled layers
    refer back to their layer) are collected rather than kept forever.

    What the process has imported by now (torch, its compiler, the store: 300,000 objects
    and more) is frozen here at once, so that the collections its first job's imports, load
    and :func:`settle` start walk only what came after: the first step of a worker's first
    200 x 1 job came 0.5 s sooner on the Zen 5 EPYC (2.0-2.2 s after the job began, against
    2.6-2.8 s). Then the collector is on: a worker process imports with it off
    (:func:`tunesmith.jobs.worker_command`)."""
    global _settling
    _settling = True
    gc.freeze()
    gc.enable()


def settle() -> None:
    """Collect, then freeze what is left (see :func:`settle_between_jobs`); nothing unless
    this process asked for it."""
    if _settling:
        gc.collect()
        gc.freeze()


def _drop_cached() -> None:
    """Empty the base cache (under ``_lock``), and let what it held be collected."""
    if _cache:
        _cache.clear()
        gc.unfreeze()


def linears_to_bf16(model) -> None:
    """Keep a frozen model's linear weights in bf16, the numbers bf16 autocast would use, cast
    once instead of at every forward. A tied output head gets a bf16 copy of its own (autocast
    cast the whole vocabulary matrix at every step); the embeddings it shared stay float32,
    in memory of their own (:func:`.unmap.own_copies`)."""
    embeddings = model.get_input_embeddings()
    tied = None if embeddings is None else embeddings.weight
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if module.weight is tied:
            module.weight = torch.nn.Parameter(tied.detach().to(torch.bfloat16), False)
        else:
            module.to(torch.bfloat16)
    unmap.own_copies(model, torch.bfloat16)


def _return_base(base, clean: bool) -> None:
    with _lock:
        _in_use.discard(id(base))
        if not clean and base in _cache.values():
            _drop_cached()  # a half-wrapped base is not reused


def clear_cache() -> None:
    with _lock:
        _drop_cached()


def target_loss(model, input_ids, attention_mask, labels) -> torch.Tensor:
    """Mean cross-entropy over the target tokens, projecting to the vocabulary only there, a
    batch packed where the model takes it (:func:`packs`, :func:`pack_batch`).

    Equal to the model's own ``labels=`` loss (shifted, mean over non-ignored tokens).
    """
    core = _core(model)
    if getattr(core.config, "model_type", None) not in _PLAIN_HEAD:
        return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    decoder = core.get_decoder()
    if input_ids.shape[0] > 1 and packs(model):
        p = pack_batch(input_ids, attention_mask, labels)
        out = decoder(
            input_ids=p.ids,
            position_ids=p.positions,
            attention_mask=p.mask,  # the rows' own, 4-D: used as it is
            use_cache=False,
            tunesmith_rows=p.rows,
            tunesmith_back=p.back,
            tunesmith_unrows=p.unrows,
            tunesmith_unback=p.unback,
        )
        hidden, targets = out.last_hidden_state, p.targets
    else:
        out = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        hidden, targets = out.last_hidden_state[:, :-1], labels[:, 1:]
    keep = targets != IGNORE
    rows, goal = hidden[keep], targets[keep]
    extra = -len(goal) % PACK_MULTIPLE
    if extra and len(goal):  # rows whose target is ignored: the same loss and gradients
        rows = torch.cat([rows, rows[:1].expand(extra, -1)])
        goal = torch.cat([goal, goal.new_full((extra,), IGNORE)])
    logits = core.get_output_embeddings()(rows)
    cap = getattr(core.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return F.cross_entropy(logits.float(), goal, ignore_index=IGNORE)


def _core(model):
    """The transformers model under a peft wrapper, or ``model`` itself (full tuning)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def packs(model) -> bool:
    """Whether :func:`target_loss` runs ``model``'s batches packed (:func:`pack_batch`), so
    without padding: its own loss path (a plain vocabulary head) and the row-wise attention
    :func:`prepare` picks for short examples."""
    config = _core(model).config
    return (
        getattr(config, "model_type", None) in _PLAIN_HEAD
        and config._attn_implementation == ROWS_ATTENTION
    )


def shared_start(input_ids, attention_mask, labels) -> int:
    """How many leading tokens of this batch :func:`pack_batch` runs once for all rows: the
    tokens every row starts with, up to the position that predicts any row's first target
    (0 for a single row)."""
    if input_ids.shape[0] < 2:
        return 0
    same = ((input_ids == input_ids[:1]) & (attention_mask == 1)).all(0)
    shortest = int(attention_mask.sum(1).min())
    common = min(int(same.int().cumprod(0).sum()), shortest - 1)  # every row keeps a token
    learned = (labels != IGNORE).any(0)
    first_target = int(learned.int().argmax()) if bool(learned.any()) else labels.shape[1]
    return max(0, min(common, first_target - 1))


PACK_MULTIPLE = 8
"""A packed sequence's length, and the number of rows the vocabulary head projects, are rounded
up to a multiple of this: a matmul of a new number of rows builds its oneDNN kernels anew, ~15 %
of a bf16 linear layer's time on an AMX Xeon, and an exact count is new at almost every step.
The head's are the dearest: the input gradient through its 49,152 x 576 matrix took 7.5 ms to
build for each new count there (16 of them in a 200-example epoch)."""


def pack_batch(input_ids, attention_mask, labels):
    """A right-padded batch as one sequence of its real tokens: the rows' shared start
    (:func:`shared_start`) once, then each row's rest.

    Causal attention makes the shared positions' hidden states equal in every row, so
    computing them once gives the same loss and gradients. Returns the packed ``(ids,
    position_ids, targets)``, ``targets[0, i]`` the label predicted at packed position ``i``,
    and what :func:`_rows_attention` needs to attend row by row: ``rows[r, c]``, the packed
    position of row ``r``'s token ``c`` (padding points at position 0 and is masked), the rows'
    causal additive mask, and ``back[i]``, the (row, token) of packed position ``i`` in
    ``rows`` flattened (a shared token is row 0's); ``unrows`` and ``unback``, their inverses,
    for the gradients (:class:`_Gather`). Its length is rounded up (:data:`PACK_MULTIPLE`)
    with tokens that have no target and that no row reads.
    """
    start = shared_start(input_ids, attention_mask, labels)
    lengths = attention_mask.sum(1).tolist()  # rows are right-padded
    width = input_ids.shape[1]
    dev = input_ids.device
    ignore = torch.tensor([IGNORE], device=dev)
    ids = [input_ids[0, :start]]
    positions = [torch.arange(start, device=dev)]
    targets = [labels.new_full((start,), IGNORE)]
    back = [torch.arange(start, device=dev)]
    rows = torch.zeros_like(input_ids)
    rows[:, :start] = torch.arange(start, device=dev)
    offset = start
    for row, n in enumerate(lengths):
        ids.append(input_ids[row, start:n])
        positions.append(torch.arange(start, n, device=dev))
        targets.append(torch.cat([labels[row, start + 1 : n], ignore]))
        back.append(torch.arange(row * width + start, row * width + n, device=dev))
        rows[row, start:n] = torch.arange(offset, offset + n - start, device=dev)
        offset += n - start
    tail = -offset % PACK_MULTIPLE  # masked tokens: no row reads them, no target
    ids.append(input_ids.new_zeros(tail))
    positions.append(torch.zeros(tail, dtype=torch.long, device=dev))
    targets.append(labels.new_full((tail,), IGNORE))
    back.append(torch.zeros(tail, dtype=torch.long, device=dev))
    real = offset
    # The inverse maps, for the gradients (_Gather): which row positions read packed position
    # i (every row reads a shared one), and which packed position read row position j.
    valid = attention_mask == 1
    in_row, in_col = valid.nonzero(as_tuple=True)
    unrows = torch.full((len(lengths), real + tail), rows.numel(), device=dev)
    unrows[in_row, rows[in_row, in_col]] = in_row * width + in_col
    back_all = torch.cat(back)
    unback = torch.full((1, rows.numel()), real + tail, device=dev)
    unback[0, back_all[:real]] = torch.arange(real, device=dev)
    visible = torch.ones(width, width, dtype=torch.bool, device=dev).tril()
    visible = visible[None] & valid[:, None, :]
    mask = torch.zeros(visible.shape, device=dev).masked_fill_(~visible, torch.finfo().min)
    return PackedBatch(
        torch.cat(ids)[None],
        torch.cat(positions)[None],
        torch.cat(targets)[None],
        rows,
        mask[:, None],
        back_all,
        unrows,
        unback,
    )


class PackedBatch(NamedTuple):
    ids: torch.Tensor
    positions: torch.Tensor
    targets: torch.Tensor
    rows: torch.Tensor
    mask: torch.Tensor
    back: torch.Tensor
    unrows: torch.Tensor
    unback: torch.Tensor


ROWS_ATTENTION = "tunesmith_rows"
"""The attention :func:`prepare` picks for short examples: ``eager`` attention, for a packed
batch (:func:`pack_batch`) on each row's own tokens."""


def _rows_attention(
    module, query, key, value, attention_mask, scaling, dropout=0.0, tunesmith_rows=None,
    tunesmith_back=None, tunesmith_unrows=None, tunesmith_unback=None, **kwargs,
):  # fmt: skip
    """The model's own eager attention (its soft-capping, say); for a packed batch
    (``tunesmith_rows`` and ``tunesmith_back`` from :func:`pack_batch`, its rows' mask as
    ``attention_mask``), the packed queries, keys and values laid out as rows, attended row by
    row and laid back."""
    eager_attention_forward = sys.modules[type(module).__module__].eager_attention_forward
    if tunesmith_rows is None:
        return eager_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )

    rows, width = tunesmith_rows.shape
    index = tunesmith_rows.flatten()
    # Compiled, index_select's backward would be atomic adds; eager, its own is the cheaper.
    gather = _Gather.apply if torch.compiler.is_compiling() else _index_select

    def as_rows(t):  # (1, heads, packed, dim) -> (rows, heads, width, dim)
        laid = gather(t[0], 1, index, tunesmith_unrows)
        return laid.unflatten(1, (rows, width)).transpose(0, 1)

    # Grouped-query attention: each key-value head serves ``groups`` query heads. Rather than
    # repeating the keys and values for every query head (the eager function's repeat_kv, a
    # copy of each, and its backward a sum), a key-value head's queries attend as one head
    # over ``groups`` x ``width`` positions, the mask tiled to match: the same scores, fewer
    # and larger matmuls.
    groups = query.shape[1] // key.shape[1]
    queries = as_rows(query).unflatten(1, (-1, groups)).flatten(2, 3)  # (rows, kv, g*width, dim)
    mask = None if attention_mask is None else attention_mask.repeat(1, 1, groups, 1)
    out, weights = eager_attention_forward(
        _OneQueryGroup(module), queries, as_rows(key), as_rows(value), mask,
        scaling=scaling, dropout=dropout, **kwargs,
    )  # fmt: skip
    # out: (rows, g*width, kv, dim) -> (rows, width, heads, dim), head = kv * groups + g
    out = out.unflatten(1, (groups, width)).permute(0, 2, 3, 1, 4).flatten(2, 3)
    weights = weights.unflatten(2, (groups, width)).flatten(1, 2)  # (rows, heads, width, width)
    # (rows, width, heads, dim) -> (1, packed, heads, dim)
    return gather(out.flatten(0, 1), 0, tunesmith_back, tunesmith_unback)[None], weights


class _OneQueryGroup:
    """An attention module as its eager function sees it when each query head stands for a
    key-value head's whole group (:func:`_rows_attention`): no keys or values to repeat."""

    num_key_value_groups = 1

    def __init__(self, module):
        self.module = module
        self.training = module.training

    def __getattr__(self, name):
        return getattr(self.module, name)


def _index_select(x, dim, index, sources):
    return x.index_select(dim, index)


class _Gather(torch.autograd.Function):
    """``x.index_select(dim, index)`` whose gradient is gathered too: the compiler turns
    index_select's own backward (index_add) into atomic adds, 8 % of a compiled packed step on
    an AMX Xeon. ``sources[k, i]`` is the k-th output position that read input position
    ``i``, or the output's length where there is none (it reads a zero). Outputs that
    ``sources`` leaves out must get no gradient: the rows' padding, masked in attention."""

    @staticmethod
    def forward(ctx, x, dim, index, sources):
        ctx.dim = dim
        ctx.save_for_backward(sources)
        return x.index_select(dim, index)

    @staticmethod
    def backward(ctx, grad):
        (sources,) = ctx.saved_tensors
        dim = ctx.dim
        padded = torch.cat([grad, torch.zeros_like(grad.narrow(dim, 0, 1))], dim)  # the zero
        picked = padded.index_select(dim, sources.flatten()).unflatten(dim, sources.shape)
        return picked.sum(dim), None, None, None


@functools.cache
def _register_rows_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(ROWS_ATTENTION, _rows_attention)
    AttentionMaskInterface.register(ROWS_ATTENTION, eager_mask)  # rows not packed: eager's
