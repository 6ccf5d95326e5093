"""Compiled training steps with the LoRA products grouped and without, in one process.

    .venv/bin/python benchmarks/lora_grouping.py [--tokens 160] [--steps 30]

Two LoRA models over the packaged base, as a compiled run trains them (bf16 linear weights
where the CPU is fast at bf16, plain attention, rank 8 on every linear layer, the decoder
layers but the first compiled): one compiled with :class:`tunesmith.engine.fused_lora.
GroupLoRAPass` (what workers do), one without. Each step is one packed batch of ``--tokens``
tokens (8 short examples with a shared start pack to about 160), the second half of them
targets; the two models' steps alternate, so the machine's drift reaches both alike. Then
each model's gradients of one such step against a float32 eager model's (the LoRA B matrices
start random here, not at peft's zeros, so every gradient is there to compare).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402
from numbers_task import default_base_model  # noqa: E402

from tunesmith.engine import fused_lora, models  # noqa: E402
from tunesmith.engine.recipe import bf16_supported  # noqa: E402


def lora_model(base_dir: Path, bf16: bool, grouped: bool | None):
    """``grouped`` None: not compiled."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = models.load_model(base_dir)
    base.requires_grad_(False)
    if bf16:
        models.linears_to_bf16(base)
    base.set_attn_implementation("eager")
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear")
    model = get_peft_model(base, config)
    for name, p in model.named_parameters():
        if p.requires_grad:
            p.data = p.data.float()
        if "lora_B" in name:
            p.data.normal_(0, 0.02)
    if grouped is None:
        return model
    options = {"pre_grad_custom_pass": fused_lora.GroupLoRAPass()} if grouped else None
    torch._dynamo.config.specialize_float = True
    for layer in models._layers_to_compile(base):
        layer.compile(dynamic=True, options=options)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=160)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    print(describe())
    base_dir, _ = default_base_model()
    bf16 = bf16_supported()
    torch.manual_seed(1)
    ids = torch.randint(10, 40_000, (1, args.tokens))
    labels = ids.clone()
    labels[:, : args.tokens // 2] = -100
    mask = torch.ones_like(ids)

    def step(model, autocast: bool = bf16) -> float:
        started = time.perf_counter()
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            loss = models.target_loss(model, ids, mask, labels)
        loss.backward()
        return time.perf_counter() - started

    def grads(model) -> list[torch.Tensor]:  # of the last step
        return [p.grad for p in model.parameters() if p.requires_grad]

    runs = {
        "ungrouped": lora_model(base_dir, bf16, False),
        "grouped": lora_model(base_dir, bf16, True),
    }
    for model in runs.values():
        for _ in range(4):  # compiles, then warms up
            step(model)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.steps):
        for name, model in runs.items():
            times[name].append(step(model))
    print(f"{args.tokens} tokens a step, {'bf16' if bf16 else 'float32'}, {args.steps} steps each")
    for name, seconds in times.items():
        print(
            f"  {name:10} median {statistics.median(seconds):.3f} s, fastest {min(seconds):.3f} s"
        )
    ratio = statistics.median(times["ungrouped"]) / statistics.median(times["grouped"])
    print(f"grouped: {ratio:.2f}x the ungrouped steps' speed (medians)")
    reference = lora_model(base_dir, False, None)
    step(reference, autocast=False)
    want = torch.cat([g.flatten() for g in grads(reference)])
    for name, model in runs.items():
        got = torch.cat([g.flatten() for g in grads(model)])
        error = float((got - want).norm() / want.norm())
        print(f"  {name:10} gradients' relative error against float32 eager: {error:.2%}")


if __name__ == "__main__":
    main()
