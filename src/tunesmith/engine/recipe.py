"""The tuning recipe: plain PyTorch + peft, readable top to bottom.

    setup()   render each conversation with the base's chat template (:mod:`.prompting`),
              tokenise with everything but the learned model turns masked out of the
              loss, check the run fits in memory, take the worker's cached base and wrap
              it in a fresh LoRA adapter (or load a private copy and unfreeze it for full
              tuning), plan the batches (length-grouped where they would pad)
    train()   for each planned batch: forward (bf16 autocast where the CPU has it),
              loss on output tokens only, backward, clip, AdamW step, warm-up + cosine lr;
              report (step, epoch, mean_loss) to the caller, who may say stop; after a
              step that ends an epoch, also the mean loss over the validation examples
              (if any: no gradients, dropout off, batched by length)
    save()    adapter weights only (LoRA) or the whole model (full), as safetensors;
              then the adapter comes off the cached base, which stays clean for the next job

Steps follow Google's count: the examples of all epochs form one stream (each epoch in its own
seeded order) cut into batches, so ``total_steps = ceil(epochs * examples / batch_size)`` and
a batch may span an epoch boundary. A snapshot's ``epoch`` is the number of epochs completed
when its step ends, as in Google's snapshots. Within that contract, where batches in seeded
order would pad, examples of similar length share a batch (see :mod:`.batching`), so little
compute goes to padding (:func:`_plan`).

Speed (see :mod:`.models`): the frozen base is loaded once per worker process and reused
across jobs, its linear weights kept in bf16 where the processor is fast at it (trainable
weights stay float32), the vocabulary projection runs only on target tokens, long runs use
decoder layers compiled once per worker, and torch uses every core it is given.
:mod:`.memory` refuses a run that cannot fit before it starts.

The engine knows nothing of HTTP, the database or the queue: it takes a :class:`Recipe` and a
callback and returns the artifact folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import platform
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from ..records.conversations import Conversation
from . import checkpoint, cores, memory, models, steps
from .batching import IGNORE, collate, plan_batches
from .models import load_model
from .prompting import PromptFormat
from .steps import FULL_LEARNING_RATE as FULL_LEARNING_RATE  # the defaults, re-exported
from .steps import LORA_LEARNING_RATE as LORA_LEARNING_RATE
from .steps import total_steps
from .tokenizer import load_tokenizer


@dataclasses.dataclass
class Recipe:
    base_dir: Path
    examples: list[tuple[str, str] | Conversation]
    """(text_input, output) pairs or conversations."""
    output_dir: Path
    epoch_count: int = 5
    batch_size: int = 4
    learning_rate: float | None = None
    """None: the method's default (:data:`LORA_LEARNING_RATE` / :data:`FULL_LEARNING_RATE`)."""
    learning_rate_multiplier: float = 1.0
    method: str = "lora"  # "lora" | "full"
    prompt_template: str | None = None
    init_adapter_dir: Path | None = None
    """Continue from a tuned model's LoRA adapter (tuning from ``tunedModels/...``)."""
    seed: int = 0
    lora_rank: int = 8
    lora_alpha: int = 16
    warmup_fraction: float = 0.06
    max_grad_norm: float = 1.0
    max_seq_len: int = 1024
    mixed_precision: str = "auto"  # "auto" | "bf16" | "no"
    checkpoint_dir: Path | None = None
    """Resume from the newest checkpoint here, and save one every ``checkpoint_every`` steps."""
    checkpoint_every: int = 10
    epoch_checkpoint_dir: Path | None = None
    """Keep the weights after each step that ends an epoch here, in ``step-N`` (laid out as
    the finished model's, to be served: :meth:`Settings.served_checkpoint_dir`); None: not
    kept."""
    validation_examples: list[tuple[str, str] | Conversation] = dataclasses.field(
        default_factory=list
    )
    """Held-out pairs or conversations, scored at the end of every epoch; none: no scoring."""
    compile: bool | None = None
    """Run the decoder layers compiled (LoRA only); None: when the run is long enough to pay
    for compiling, or the worker's base already is compiled (see :mod:`.models`)."""

    @property
    def total_steps(self) -> int:
        return total_steps(len(self.examples), self.epoch_count, self.batch_size)

    @property
    def peak_learning_rate(self) -> float:
        return steps.peak_learning_rate(
            self.method, self.learning_rate, self.learning_rate_multiplier
        )


@dataclasses.dataclass(frozen=True)
class StepReport:
    step: int
    epoch: int
    mean_loss: float
    tokens: int  # real (non-padding) tokens in the batch
    validation_loss: float | None = None
    """Set on a step that ends an epoch, when the recipe has validation examples."""


class Stopped(Exception):
    """The callback asked the run to stop (cancelled, or the job's lease was lost)."""


class NonFiniteLoss(RuntimeError):
    pass


def bf16_supported() -> bool:
    """Whether bf16 matmul is fast here (AVX512-BF16 / AMX on an x86 CPU, or a CUDA GPU)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    if platform.machine().lower() in ("x86_64", "amd64"):
        # oneDNN runs bf16 on any AVX-512 CPU, but without these instructions it emulates
        # them: on an Ice Lake Xeon (avx512f, no avx512_bf16) a bf16 matmul ran at a fifth of
        # float32's speed and a LoRA run took 2.2 times as long (docs/benchmarks.md).
        return _cpu_has("avx512_bf16") or _cpu_has("amx_tile")
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cpu_has(feature: str) -> bool:
    """An instruction set extension as PyTorch's cpuinfo reads it (False if it cannot)."""
    try:
        return bool(torch.cpu.get_capabilities().get(feature, False))
    except (AttributeError, RuntimeError):
        return False


def _uses_bf16(recipe: Recipe) -> bool:
    return recipe.mixed_precision == "bf16" or (
        recipe.mixed_precision == "auto" and bf16_supported()
    )


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def encode(tokenizer, fmt: PromptFormat, text_input: str, output: str, max_len: int):
    """Token ids and labels of one (input, output) pair; the prompt is masked out of the loss
    (label -100)."""
    return fmt.encode(Conversation.single(text_input, output), max_len)


def conversation(example: tuple[str, str] | Conversation) -> Conversation:
    return example if isinstance(example, Conversation) else Conversation.single(*example)


def run(recipe: Recipe, on_step: Callable[[StepReport], bool] = lambda _r: True) -> Path:
    """Tune and save; returns ``recipe.output_dir``. Raises :class:`Stopped` if told to stop.
    Holds the machine's training lock meanwhile (see :mod:`.cores`)."""
    with cores.training():
        return _run(recipe, on_step)


def compile_ahead(base_dir: Path, prompt_template: str | None = None) -> None:
    """Compile the decoder layers of ``base_dir`` as a long LoRA run would, in a short run,
    so that every later worker of this installation loads the compiled code from
    :func:`.models.compile_cache` instead of compiling it anew. ``prompt_template``: the one
    jobs on it use (setup's record names it, :func:`.models.note_compiled_ahead`)."""
    import tempfile

    try:
        with tempfile.TemporaryDirectory() as out:
            job = _short_run(base_dir, prompt_template, True, Path(out))
        models.note_compiled_ahead(job, _uses_bf16(job))
    finally:
        models.clear_cache()  # its compiled base is not kept for later jobs here


def ready(
    base_dir: Path,
    prompt_template: str | None,
    scratch: Path,
    on_step: Callable[[StepReport], bool] = lambda _r: True,
) -> bool:
    """Make this process's next LoRA job on ``base_dir`` start training at once: a short run
    loads the base into the worker's cache, wraps, trains and unwraps it (the first forward
    and backward set up code and memory that later runs reuse), and, where setup compiled the
    layers ahead, loads the compiled code too, so a later run of that kind runs compiled
    whatever its length. Returns whether the layers are now compiled. The thrown-away adapter
    goes to ``scratch``, an empty folder; ``on_step`` may say stop (:class:`Stopped`)."""
    # Its examples are a few tokens each: the plain attention setup compiled for.
    probe = Recipe(base_dir, [], Path(), prompt_template=prompt_template)
    compile = models.compiled_ahead(probe, _uses_bf16(probe), models.EAGER_ATTENTION_MAX_LEN)
    _short_run(base_dir, prompt_template, compile, scratch, on_step)
    models.settle()  # the compiled layers too, with the base
    return compile


def _short_run(
    base_dir: Path,
    prompt_template: str | None,
    compile: bool,
    out: Path,
    on_step: Callable[[StepReport], bool] = lambda _r: True,
) -> Recipe:
    """Two steps of LoRA on ten tiny examples, their adapter saved under ``out``."""
    # Batches of 5 rows: a count that equals one of the model's own sizes (8 heads, say) would
    # make the compiler treat it as that constant, and later batches of other sizes miss.
    examples: list[tuple[str, str] | Conversation] = [
        (f"{i} {i + 1}", f"{i + 2}") for i in range(10)
    ]
    job = Recipe(
        base_dir,
        examples,
        out / "adapter",
        epoch_count=1,
        batch_size=5,
        prompt_template=prompt_template,
        compile=compile,
    )
    run(job, on_step)
    return job


def _run(recipe: Recipe, on_step: Callable[[StepReport], bool]) -> Path:
    _use_all_cores()
    torch.manual_seed(recipe.seed)
    tokenizer = _tokenizer(recipe.base_dir)
    fmt = PromptFormat(recipe.prompt_template, tokenizer)
    rows = [fmt.encode(conversation(e), recipe.max_seq_len) for e in recipe.examples]
    held_out = [fmt.encode(conversation(e), recipe.max_seq_len) for e in recipe.validation_examples]
    lengths = [len(ids) for ids, _ in rows]
    use_bf16 = _uses_bf16(recipe)
    memory.check(
        recipe.base_dir,
        recipe.method,
        recipe.batch_size,
        max(lengths + [len(ids) for ids, _ in held_out], default=1),
        use_bf16,
        recipe.lora_rank,
    )  # fail now, not when the operating system kills the worker
    model = models.prepare(
        recipe, use_bf16, load_model, max(lengths, default=1), sum(lengths) * recipe.epoch_count
    )
    try:
        plan = _plan(recipe, lengths, model)
        scorer = _Scorer(held_out, recipe.batch_size, tokenizer.pad_token_id, use_bf16)
        with contextlib.nullcontext() if models.compiled(model) else models.eager(model):
            _train(recipe, model, tokenizer, rows, plan, use_bf16, on_step, scorer, fmt)
        _save(model, tokenizer, fmt, recipe, recipe.output_dir)
    finally:
        models.release(model)  # the cached base goes back clean for the next job
    return recipe.output_dir


_WEIGHT_FILES = {".safetensors", ".bin", ".gguf", ".pt", ".pth"}  # not read by a tokenizer


def _tokenizer(base_dir: Path):
    """``base_dir``'s tokenizer, loaded once per worker process as its base is (0.1-0.2 s a
    job otherwise); loaded again if any file of the folder but its weights changes (the
    tokenizer's own files, its chat template). Training only reads it (its own thread, one
    run at a time: :func:`run`)."""
    folder = Path(base_dir).resolve()
    stamp = tuple(
        (p.name, p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix not in _WEIGHT_FILES
    )
    return _load_tokenizer(folder, stamp)


@functools.lru_cache(maxsize=2)
def _load_tokenizer(folder: Path, stamp: tuple):
    return load_tokenizer(folder)


def _plan(recipe: Recipe, lengths: list[int], model) -> list:
    """The run's batches: in each epoch's seeded order where the model runs them packed,
    without padding (:func:`.models.packs`: short examples); else length-grouped
    (:mod:`.batching`). Grouping saves padding, but batches of like lengths are batches of like
    examples too: on the packaged base, 200 numbers-task pairs for one epoch held out 71 %
    length-grouped against 77 % in seeded order, mean of six seeds (the plain transformers
    loop: 79 %)."""
    args = (len(lengths), recipe.epoch_count, recipe.batch_size, recipe.seed)
    return plan_batches(*args) if models.packs(model) else plan_batches(*args, lengths)


def _train(
    recipe: Recipe, model, tokenizer, rows, plan, use_bf16: bool, on_step, scorer, fmt
) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel for all parameters instead of a loop over ~200 small LoRA tensors
    # (about 4 % of a CPU step); the same update, the same state dict for checkpoints.
    optimizer = torch.optim.AdamW(
        params, lr=recipe.peak_learning_rate, weight_decay=0.0, fused=True
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(len(plan), recipe.warmup_fraction)
    )
    dev = device()
    model.train()
    done, plan = checkpoint.resume(recipe.checkpoint_dir, model, optimizer, scheduler, plan)
    for step, (indices, epoch) in enumerate(plan, start=1):
        if step <= done:
            continue  # resumed: this step is in the checkpoint
        ids, labels, mask = collate([rows[i] for i in indices], tokenizer.pad_token_id)
        ids, labels, mask = ids.to(dev), labels.to(dev), mask.to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = models.target_loss(model, ids, mask, labels)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(
                f"the loss became {loss.item()} at step {step}; try a lower learning rate"
            )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, recipe.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        # Whether this step ends an epoch comes from the plan alone, so a resumed run scores
        # exactly the epochs that end after its checkpoint.
        ended_epoch = epoch > (plan[step - 2][1] if step > 1 else 0)
        held_out = scorer(model, epoch) if scorer and ended_epoch else None
        if recipe.epoch_checkpoint_dir is not None and (ended_epoch or step == len(plan)):
            _keep(model, tokenizer, fmt, recipe, recipe.epoch_checkpoint_dir / f"step-{step}")
        report = StepReport(step, epoch, float(loss.detach()), int(mask.sum()), held_out)
        decision = on_step(report)  # True, False (stop) or checkpoint.PAUSE (save, then stop)
        if recipe.checkpoint_dir is not None and checkpoint.due(recipe, step, len(plan), decision):
            checkpoint.save(recipe.checkpoint_dir, step, model, optimizer, scheduler, plan)
        if not decision:
            raise Stopped(f"stopped at step {step}")


class _Scorer:
    """The mean loss per target token over the validation examples, with the model as it is.

    Examples are batched by length (``batch_size`` at a time) so little goes to padding; the
    mean is over all target tokens, so it does not depend on how they were batched.
    """

    def __init__(self, rows, batch_size: int, pad_id: int, use_bf16: bool):
        ranked = sorted(rows, key=lambda r: len(r[0]))
        self.batches = [ranked[i : i + batch_size] for i in range(0, len(ranked), batch_size)]
        self.pad_id = pad_id
        self.use_bf16 = use_bf16

    def __bool__(self) -> bool:
        return bool(self.batches)

    def __call__(self, model, epoch: int) -> float:
        dev = device()
        total, count = 0.0, 0
        model.eval()
        try:  # eagerly: compiled layers would compile again for inference mode, for a few batches
            with torch.inference_mode(), models.eager(model):
                for batch in self.batches:
                    ids, labels, mask = (t.to(dev) for t in collate(batch, self.pad_id))
                    targets = int((labels[:, 1:] != IGNORE).sum())
                    if not targets:
                        continue  # only possible when a target fills the whole window
                    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.use_bf16):
                        loss = models.target_loss(model, ids, mask, labels)
                    total += float(loss) * targets
                    count += targets
        finally:
            model.train()
        mean = total / max(1, count)
        if not math.isfinite(mean):
            raise NonFiniteLoss(
                f"the validation loss became {mean} after epoch {epoch}; try a lower learning rate"
            )
        return mean


def _use_all_cores() -> None:
    """As many torch threads as cores this process may run on (unless OMP_NUM_THREADS says)."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    usable = cores.usable()
    if torch.get_num_threads() != usable:
        torch.set_num_threads(usable)


def _warmup_cosine(steps: int, warmup_fraction: float) -> Callable[[int], float]:
    warmup = max(1, round(steps * warmup_fraction))

    def factor(i: int) -> float:  # i counts finished steps; step i+1 runs at factor(i)
        if i < warmup:
            return (i + 1) / warmup
        progress = (i - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _keep(model, tokenizer, fmt: PromptFormat, recipe: Recipe, out: Path) -> None:
    """Save the model as it is into ``out`` whole or not at all (a temporary folder renamed
    into place), replacing what a run before a resume kept there."""
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    _save(model, tokenizer, fmt, recipe, tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def _save(model, tokenizer, fmt: PromptFormat, recipe: Recipe, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)  # LoRA: adapter weights only
    if recipe.method == "full":
        tokenizer.save_pretrained(out)
    fmt.save(out)
