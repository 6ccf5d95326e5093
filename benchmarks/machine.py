"""The machine a benchmark ran on, as its figures name it: CPU model, flags, cores."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from tunesmith.engine import cores  # imports no torch

# The instruction sets that decide matmul speed here (float32, bf16, int8, AMX tiles).
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_model() -> str:
    """The model name, with family, model and clock where the name alone does not tell the
    generation (a virtual machine's "AMD EPYC" is Zen 1 to Zen 4)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    name = fields.get("Model name") or platform.processor() or platform.machine()
    details = []
    if "CPU family" in fields and "Model" in fields:
        details.append(f"family {fields['CPU family']} model {fields['Model']}")
    try:
        mhz = Path("/proc/cpuinfo").read_text().split("cpu MHz")[1].split(":")[1].split()[0]
        details.append(f"{float(mhz) / 1000:.1f} GHz")
    except (OSError, IndexError, ValueError):
        pass
    return f"{name}, {', '.join(details)}" if details else name


def cpu_flags() -> str:
    """The matmul-relevant instruction sets this CPU reports."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split()
    except (OSError, IndexError):
        return "unknown"
    return " ".join(f for f in FLAGS if f in flags) or "none of avx2/avx512/amx"


def describe() -> str:
    """``MODEL (flags), N cores``."""
    return f"{cpu_model()} ({cpu_flags()}), {cores.usable()} cores"
