"""llama-cpp-python for the export tests: built from source once, the wheel cached outside
the repository, installed into the running virtualenv only when it is missing.

PyPI has no prebuilt wheel of llama-cpp-python for this machine, so pip compiles its sdist
with the machine's cmake, ninja and g++ (about 6 minutes on 2 cores). The wheel lands in
``TUNESMITH_WHEEL_CACHE`` (default ``~/.cache/tunesmith/wheels``) and later runs, and later
clones, install it in seconds. ``make test`` runs this file before the tests; the export
tests' fixture calls :func:`ensure` too, so a bare ``pytest`` works as well.

    python tests/llama_cpp_wheel.py        # build (if needed) and install
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

VERSION = "0.3.36"
PACKAGE = "llama-cpp-python"


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "tunesmith" / "wheels"
    return Path(os.environ.get("TUNESMITH_WHEEL_CACHE") or default)


def installed() -> bool:
    try:
        return importlib.metadata.version(PACKAGE) == VERSION
    except importlib.metadata.PackageNotFoundError:
        return False


def cached_wheel() -> Path | None:
    wheels = sorted(cache_dir().glob(f"llama_cpp_python-{VERSION}-*.whl"))
    return wheels[-1] if wheels else None


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def ensure(log=print) -> None:
    """Install llama-cpp-python VERSION, building its wheel first if the cache lacks it."""
    if installed():
        return
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".llama-cpp-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once build it once
        wheel = cached_wheel()
        if wheel is None:
            log(f"building {PACKAGE}=={VERSION} from source into {folder} (once; ~6+ minutes)")
            env = dict(os.environ)
            # CPU only; no OpenMP, so the build needs no more than g++ and the standard library.
            env.setdefault("CMAKE_ARGS", "-DGGML_OPENMP=OFF -DLLAMA_BUILD_TESTS=OFF")
            env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "--disable-pip-version-check",
                    "wheel",
                    "--no-deps",
                    "--no-binary",
                    PACKAGE,
                    "-w",
                    str(folder),
                    f"{PACKAGE}=={VERSION}",
                ],
                check=True,
                env=env,
            )
            wheel = cached_wheel()
            if wheel is None:
                raise RuntimeError(f"pip built no {PACKAGE} wheel into {folder}")
        if not installed():
            log(f"installing {wheel.name}")
            _pip("install", "-q", str(wheel))
    importlib.invalidate_caches()


if __name__ == "__main__":
    ensure()
