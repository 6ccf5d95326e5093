"""Step checkpoints: everything a run needs to carry on exactly where it stopped.

A checkpoint is a folder ``step-NNNNNN`` under the run's checkpoint folder::

    trainable.safetensors   the parameters being tuned (LoRA adapter, or all for full tuning)
    optimizer.safetensors   AdamW moments and step counts, keyed "<param index>/<name>"
    rng.safetensors         torch's CPU (and CUDA) generator states
    state.json              step, the run's data order (the planned batches), optimizer
                            param groups and scheduler state

Only safetensors and JSON: nothing is unpickled on load. A checkpoint is written to a
temporary folder and renamed into place, so a run killed mid-save leaves the previous one
intact; older checkpoints are removed once a newer one is complete.

The recipe asks :func:`due` after each step. ``on_step`` may answer :data:`PAUSE` (falsy, so
the run stops) to have a checkpoint saved first: a worker told to shut down pauses its run,
and the next worker resumes it from that very step.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

FORMAT = 1


class _Pause:
    """Stop the run after saving a checkpoint of this step."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "PAUSE"


PAUSE = _Pause()


def due(recipe, step: int, total: int, decision: object) -> bool:
    """Whether to checkpoint after ``step``: when pausing, and every ``checkpoint_every``."""
    if recipe.checkpoint_dir is None:
        return False
    if decision is PAUSE:
        return True
    every = recipe.checkpoint_every
    return bool(decision) and every > 0 and step % every == 0 and step < total


def latest(folder: Path | None) -> Path | None:
    if folder is None or not folder.is_dir():
        return None
    done = sorted(p for p in folder.glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def latest_step(folder: Path | None) -> int:
    """The step the newest complete checkpoint in ``folder`` ends at (0 when there is none)."""
    path = latest(folder)
    return json.loads((path / "state.json").read_text())["step"] if path else 0


def save(folder: Path, step: int, model, optimizer, scheduler, plan: list) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-step-{step:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    trainable = {n: p.detach().cpu().contiguous() for n, p in _trainable(model)}
    save_file(trainable, tmp / "trainable.safetensors")
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in opt["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}/{key}"] = value
    save_file(tensors, tmp / "optimizer.safetensors")
    save_file(_rng_state(), tmp / "rng.safetensors")
    state = {
        "format": FORMAT,
        "step": step,
        "plan": [[list(indices), epoch] for indices, epoch in plan],
        "param_groups": opt["param_groups"],
        "optimizer_scalars": scalars,
        "scheduler": scheduler.state_dict(),
    }
    (tmp / "state.json").write_text(json.dumps(state))
    for f in tmp.iterdir():
        _fsync(f)
    final = folder / f"step-{step:06d}"
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _fsync(folder)
    for old in folder.glob("step-*"):
        if old.name < final.name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def resume(folder: Path | None, model, optimizer, scheduler, plan: list) -> tuple[int, list]:
    """Restore the newest checkpoint into the run's objects.

    Returns ``(steps already done, the run's plan)``: ``(0, plan)`` when there is nothing to
    resume, else the step and the data order the checkpoint was taken with.
    """
    path = latest(folder)
    if path is None:
        return 0, plan
    state = json.loads((path / "state.json").read_text())
    if state.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {state.get('format')}")
    saved = load_file(path / "trainable.safetensors")
    params = dict(_trainable(model))
    if set(saved) != set(params):
        raise ValueError(f"{path}: its tuned parameters do not match this run's model")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(saved[name].to(p.device, p.dtype))
    optimizer.load_state_dict(_optimizer_state(path, state))
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(load_file(path / "rng.safetensors"))
    return state["step"], [(indices, epoch) for indices, epoch in state["plan"]]


def remove(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _trainable(model):
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _optimizer_state(path: Path, state: dict) -> dict:
    per_param: dict[int, dict] = {}
    for key, value in load_file(path / "optimizer.safetensors").items():
        index, name = key.split("/", 1)
        per_param.setdefault(int(index), {})[name] = value
    for key, value in state["optimizer_scalars"].items():
        index, name = key.split("/", 1)
        per_param.setdefault(int(index), {})[name] = value
    groups = state["param_groups"]
    for group in groups:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    return {"state": per_param, "param_groups": groups}


def _rng_state() -> dict[str, torch.Tensor]:
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            states[f"cuda/{i}"] = s
    return states


def _set_rng_state(states: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(states["cpu"])
    cuda = [states[k] for k in sorted(states) if k.startswith("cuda/")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
