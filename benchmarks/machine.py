"""The machine a benchmark ran on, as its figures name it: CPU model, flags, cores."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

# The instruction sets that decide matmul speed here (float32, bf16, int8, AMX tiles).
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The matmul-relevant instruction sets this CPU reports."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split()
    except (OSError, IndexError):
        return "unknown"
    return " ".join(f for f in FLAGS if f in flags) or "none of avx2/avx512/amx"


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def describe() -> str:
    """``MODEL (flags), N cores``."""
    return f"{cpu_model()} ({cpu_flags()}), {cores()} cores"
