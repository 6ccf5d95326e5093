"""The tuning recipe: plain PyTorch + peft, readable top to bottom.

    setup()   load base + tokenizer, wrap in LoRA (or unfreeze all for full tuning),
              tokenise with the prompt masked out of the loss, plan the batches
    train()   for each planned batch: forward (bf16 autocast where the CPU has it),
              loss on output tokens only, backward, clip, AdamW step, warm-up + cosine lr;
              report (step, epoch, mean_loss) to the caller, who may say stop
    save()    adapter weights only (LoRA) or the whole model (full), as safetensors

Steps follow Google's count: the examples of all epochs form one stream (each epoch in its own
seeded order) cut into batches, so ``total_steps = ceil(epochs * examples / batch_size)`` and
a batch may span an epoch boundary. A snapshot's ``epoch`` is the number of epochs completed
when its step ends, as in Google's snapshots.

The engine knows nothing of HTTP, the database or the queue: it takes a :class:`Recipe` and a
callback and returns the artifact folder.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import torch

from . import checkpoint
from .prompting import PromptFormat

LORA_LEARNING_RATE = 2e-3
FULL_LEARNING_RATE = 5e-5
IGNORE = -100


@dataclasses.dataclass
class Recipe:
    base_dir: Path
    examples: list[tuple[str, str]]
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

    @property
    def total_steps(self) -> int:
        return total_steps(len(self.examples), self.epoch_count, self.batch_size)

    @property
    def peak_learning_rate(self) -> float:
        base = self.learning_rate
        if base is None:
            base = LORA_LEARNING_RATE if self.method == "lora" else FULL_LEARNING_RATE
        return base * self.learning_rate_multiplier


@dataclasses.dataclass(frozen=True)
class StepReport:
    step: int
    epoch: int
    mean_loss: float
    tokens: int  # real (non-padding) tokens in the batch


class Stopped(Exception):
    """The callback asked the run to stop (cancelled, or the job's lease was lost)."""


class NonFiniteLoss(RuntimeError):
    pass


def total_steps(n_examples: int, epoch_count: int, batch_size: int) -> int:
    return math.ceil(epoch_count * n_examples / batch_size)


def plan_batches(
    n: int, epoch_count: int, batch_size: int, seed: int
) -> list[tuple[list[int], int]]:
    """The run's batches as (example indices, epochs completed after this batch)."""
    gen = torch.Generator().manual_seed(seed)
    stream = [i for _ in range(epoch_count) for i in torch.randperm(n, generator=gen).tolist()]
    batches = []
    for start in range(0, len(stream), batch_size):
        end = min(start + batch_size, len(stream))
        batches.append((stream[start:end], end // n))
    return batches


def bf16_supported() -> bool:
    """Whether bf16 matmul is fast here (AVX512-BF16 / AMX on CPU, or a CUDA GPU)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _quiet_transformers() -> None:
    # Progress bars and deprecation chatter from a library call land in the user's terminal.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_tokenizer(base_dir: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(base_dir: Path):
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).to(device())


def encode(tokenizer, fmt: PromptFormat, text_input: str, output: str, max_len: int):
    """Token ids and labels; the prompt is masked out of the loss (label -100)."""
    prompt = tokenizer(fmt.prompt(text_input), add_special_tokens=False)["input_ids"]
    target = tokenizer(fmt.target(output), add_special_tokens=False)["input_ids"]
    target = target[:max_len]
    prompt = prompt[-(max_len - len(target)) :] if len(target) < max_len else []
    return prompt + target, [IGNORE] * len(prompt) + target


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int):
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (i, lab) in enumerate(rows):
        ids[r, : len(i)] = torch.tensor(i)
        labels[r, : len(lab)] = torch.tensor(lab)
        mask[r, : len(i)] = 1
    return ids, labels, mask


def run(recipe: Recipe, on_step: Callable[[StepReport], bool] = lambda _r: True) -> Path:
    """Tune and save; returns ``recipe.output_dir``. Raises :class:`Stopped` if told to stop."""
    torch.manual_seed(recipe.seed)
    tokenizer = load_tokenizer(recipe.base_dir)
    fmt = PromptFormat(recipe.prompt_template, tokenizer)
    model = _prepare_model(recipe)
    rows = [encode(tokenizer, fmt, i, o, recipe.max_seq_len) for i, o in recipe.examples]
    plan = plan_batches(len(rows), recipe.epoch_count, recipe.batch_size, recipe.seed)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.peak_learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(len(plan), recipe.warmup_fraction)
    )
    use_bf16 = recipe.mixed_precision == "bf16" or (
        recipe.mixed_precision == "auto" and bf16_supported()
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
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        if not torch.isfinite(loss):
            raise NonFiniteLoss(
                f"the loss became {loss.item()} at step {step}; try a lower learning rate"
            )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, recipe.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        report = StepReport(step, epoch, float(loss.detach()), int(mask.sum()))
        decision = on_step(report)  # True, False (stop) or checkpoint.PAUSE (save, then stop)
        if checkpoint.due(recipe, step, len(plan), decision):
            checkpoint.save(recipe.checkpoint_dir, step, model, optimizer, scheduler, plan)
        if not decision:
            raise Stopped(f"stopped at step {step}")
    _save(model, tokenizer, fmt, recipe)
    return recipe.output_dir


def _prepare_model(recipe: Recipe):
    model = load_model(recipe.base_dir)
    if recipe.method == "full":
        model.requires_grad_(True)
        return model
    if recipe.method != "lora":
        raise ValueError(f"unknown tuning method '{recipe.method}' (use 'lora' or 'full')")
    from peft import LoraConfig, PeftModel, get_peft_model

    if recipe.init_adapter_dir is not None:
        return PeftModel.from_pretrained(model, recipe.init_adapter_dir, is_trainable=True)
    config = LoraConfig(
        r=recipe.lora_rank,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def _warmup_cosine(steps: int, warmup_fraction: float) -> Callable[[int], float]:
    warmup = max(1, round(steps * warmup_fraction))

    def factor(i: int) -> float:  # i counts finished steps; step i+1 runs at factor(i)
        if i < warmup:
            return (i + 1) / warmup
        progress = (i - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _save(model, tokenizer, fmt: PromptFormat, recipe: Recipe) -> None:
    out = recipe.output_dir
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)  # LoRA: adapter weights only
    if recipe.method == "full":
        tokenizer.save_pretrained(out)
    fmt.save(out)
