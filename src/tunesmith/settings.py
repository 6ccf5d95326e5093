"""One settings object, read from ``TUNESMITH_*`` environment variables.

Nothing is read at import time: :func:`get_settings` builds the object when asked, so tests
and CLI flags can set the environment first.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

DEFAULT_BASE_MODEL = "models/smollm2-135m-instruct"
# Tuned adapters kept in memory per base model: COUNT[,BYTES] (see serving/adapters.py).
DEFAULT_ADAPTER_CACHE = "64,128MiB"
# How generation stores a base model's matrices (see serving/weights.py).
SERVING_WEIGHTS = ("float16", "float32")
DEFAULT_SERVING_WEIGHTS = "float16"
# What decodes generation requests (see serving/llama.py): llama.cpp where it can, else PyTorch.
SERVING_ENGINES = ("auto", "llama.cpp", "torch")
DEFAULT_SERVING_ENGINE = "auto"


@dataclasses.dataclass(frozen=True)
class Settings:
    home: Path
    """Where state lives: the SQLite database, converted base models, adapters."""
    database_url: str
    """SQLAlchemy URL; SQLite under ``home`` unless ``TUNESMITH_DATABASE_URL`` says otherwise."""
    default_base_model: str = DEFAULT_BASE_MODEL
    """What aliases such as ``models/text-bison-001`` resolve to."""
    base_models: tuple[tuple[str, str], ...] = ()
    """Base models the operator offers beyond the registry, ``(NAME, SOURCE)``: callers of a
    server name them ``models/NAME`` (or by SOURCE itself); SOURCE is a model folder, a .gguf
    file or a Hugging Face id. ``TUNESMITH_BASE_MODELS`` / ``tunesmith serve --base-model``."""
    max_base_model_bytes: int = 20 * 2**30
    """Largest Hugging Face download of a base model, asked of the hub before it starts."""
    api_endpoint: str | None = None
    """When set, the SDK talks to this server instead of running the service in-process."""
    api_key: str | None = None
    worker_idle_seconds: float = 60.0
    """An embedded background worker leaves after this long without work."""
    worker_ready: bool = True
    """A worker of ``tunesmith serve`` or ``tunesmith worker`` that finds no job when it starts
    loads the default base model (and its compiled layers) meanwhile, so its first job starts
    training at once; it then holds that model's memory while idle."""
    lease_seconds: float = 60.0
    """A claimed job whose heartbeat is older than this is taken to be abandoned."""
    seed: int = 0
    max_attempts: int = 3
    """A run whose worker dies (stops heartbeating) is retried this many times in all."""
    checkpoint_every: int = 10
    """Save a resumable checkpoint every this many steps (and when a worker is told to stop)."""
    progress_timeout_seconds: float = 1800.0
    """A run with no finished step for this long is taken as hung: its lease is given up."""
    adapter_cache: str = "64,128MiB"
    """Tuned adapters kept in memory per base model, ``COUNT[,BYTES]`` (units B, MB, MiB, GiB)."""
    generation_queue: int = 64
    """Generate requests that may wait for a batch; past this the server answers 429."""
    generation_batch_rows: int = 32
    """Most sequences (requests x candidates) decoded together in one batch."""
    serving_weights: str = DEFAULT_SERVING_WEIGHTS
    """How generation stores a base model's matrices: ``float16`` (half the memory, decoding a
    request about 3x faster) or ``float32`` (as trained); see tunesmith.serving.weights."""
    serving_engine: str = DEFAULT_SERVING_ENGINE
    """``auto``: llama.cpp decodes where llama-cpp-python is installed and takes the model,
    PyTorch the rest; ``llama.cpp`` or ``torch``: that engine only (tunesmith.serving.llama)."""
    # -- limits (see SECURITY.md); 0 turns a limit off -----------------------------------
    max_request_bytes: int = 32 * 1024 * 1024
    """Largest request body; a bigger one is refused (400 INVALID_ARGUMENT) before parsing."""
    requests_per_minute: int = 600
    """Requests per minute per API key (requests without a key are not counted); past it: 429.
    Operation reads have a bucket of their own at this rate (see api/limits.py)."""
    max_jobs_per_user: int = 4
    """Tuning jobs one user may have queued or running at once; past it: 429."""
    max_examples: int = 100_000
    """Examples in one training set."""
    max_page_size: int = 1000
    """Largest page a list returns (a bigger pageSize is clamped, as Google does)."""
    max_file_bytes: int = 32 * 1024 * 1024
    """Largest training file one upload stores (OpenAI's ``/files``; the request limit above
    bounds it too)."""
    max_files_per_user: int = 100
    """Files (OpenAI's ``/files``) one user may keep stored at once; past it: 429."""

    def __post_init__(self):
        # Settings may come back from JSON (lists) or from callers (a dict): one form here.
        pairs = self.base_models.items() if isinstance(self.base_models, dict) else self.base_models
        object.__setattr__(self, "base_models", tuple((str(n), str(s)) for n, s in pairs))

    # -- the layout of the home: every path under it is named here, once ------------------

    @property
    def adapters_dir(self) -> Path:
        """Finished tuned models' weights, one folder per operation (a peft adapter, or the
        whole model for full tuning)."""
        return self.home / "adapters"

    def stored_path(self, relative: str) -> Path:
        """A path the store records relative to the home (a tuned model's weights), so a
        home can move and workers on other machines can mount it elsewhere."""
        return self.home / relative

    def path_to_store(self, path: Path) -> str:
        """The form :meth:`stored_path` reads back."""
        return str(Path(path).relative_to(self.home))

    @property
    def base_models_dir(self) -> Path:
        return self.home / "base-models"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def checkpoints_dir(self) -> Path:
        return self.home / "checkpoints"

    def served_checkpoint_dir(self, tuned_model_id: str, step: int | None = None) -> Path:
        """Where a tuned model's checkpoints are kept to be served (``MODEL:ckpt-step-N``):
        one adapter folder per step (the served-as-is layout of a finished adapter), all of
        them under the model's own folder (``step`` None), which its deletion removes."""
        folder = self.home / "served-checkpoints" / tuned_model_id
        return folder if step is None else folder / f"step-{step}"

    @property
    def files_dir(self) -> Path:
        """Uploaded files (OpenAI's ``/files``), one per id the store chose."""
        return self.home / "files"

    @property
    def exports_dir(self) -> Path:
        """Exports made for downloads, kept while the tuned model's weights are unchanged."""
        return self.home / "exports"

    @property
    def worker_lock(self) -> Path:
        """Held by the home's embedded background worker while it runs."""
        return self.home / "worker.lock"

    @property
    def worker_wake(self) -> Path:
        """A named pipe the embedded worker reads: a byte there means a job was queued."""
        return self.home / "worker.wake"

    @property
    def serving_cache_dir(self) -> Path:
        """GGUF copies of served models and adapters, for llama.cpp (written on first use)."""
        return self.home / "serving"

    @property
    def run_dir(self) -> Path:
        """Locks and sockets of the home's long-lived helpers (the generation server)."""
        return self.home / "run"


def get_settings(**overrides) -> Settings:
    """Settings from the environment; keyword arguments (CLI flags) take precedence."""
    env = os.environ
    home = overrides.pop("home", None) or env.get("TUNESMITH_HOME") or Path.home() / ".tunesmith"
    home = Path(home).expanduser().resolve()
    values: dict[str, Any] = dict(
        home=home,
        database_url=env.get("TUNESMITH_DATABASE_URL") or f"sqlite:///{home / 'tunesmith.db'}",
        default_base_model=env.get("TUNESMITH_DEFAULT_BASE_MODEL") or DEFAULT_BASE_MODEL,
        api_endpoint=env.get("TUNESMITH_API_ENDPOINT") or None,
        api_key=env.get("TUNESMITH_API_KEY") or None,
        worker_idle_seconds=float(env.get("TUNESMITH_WORKER_IDLE_SECONDS", 60)),
        worker_ready=parse_flag(env.get("TUNESMITH_WORKER_READY", "1"), "TUNESMITH_WORKER_READY"),
        lease_seconds=float(env.get("TUNESMITH_LEASE_SECONDS", 60)),
        seed=int(env.get("TUNESMITH_SEED", 0)),
        max_attempts=int(env.get("TUNESMITH_MAX_ATTEMPTS", 3)),
        checkpoint_every=int(env.get("TUNESMITH_CHECKPOINT_EVERY", 10)),
        progress_timeout_seconds=float(env.get("TUNESMITH_PROGRESS_TIMEOUT_SECONDS", 1800)),
        adapter_cache=env.get("TUNESMITH_ADAPTER_CACHE") or DEFAULT_ADAPTER_CACHE,
        generation_queue=int(env.get("TUNESMITH_GENERATION_QUEUE", 64)),
        generation_batch_rows=int(env.get("TUNESMITH_GENERATION_BATCH_ROWS", 32)),
        serving_weights=parse_choice(
            env.get("TUNESMITH_SERVING_WEIGHTS") or DEFAULT_SERVING_WEIGHTS,
            SERVING_WEIGHTS,
            "TUNESMITH_SERVING_WEIGHTS",
        ),
        serving_engine=parse_choice(
            env.get("TUNESMITH_SERVING_ENGINE") or DEFAULT_SERVING_ENGINE,
            SERVING_ENGINES,
            "TUNESMITH_SERVING_ENGINE",
        ),
        max_request_bytes=int(env.get("TUNESMITH_MAX_REQUEST_BYTES", 32 * 1024 * 1024)),
        requests_per_minute=int(env.get("TUNESMITH_REQUESTS_PER_MINUTE", 600)),
        max_jobs_per_user=int(env.get("TUNESMITH_MAX_JOBS_PER_USER", 4)),
        max_examples=int(env.get("TUNESMITH_MAX_EXAMPLES", 100_000)),
        max_page_size=int(env.get("TUNESMITH_MAX_PAGE_SIZE", 1000)),
        max_file_bytes=parse_bytes(
            env.get("TUNESMITH_MAX_FILE_BYTES", "32MiB"), "TUNESMITH_MAX_FILE_BYTES"
        ),
        max_files_per_user=int(env.get("TUNESMITH_MAX_FILES_PER_USER", 100)),
        base_models=parse_base_models(
            re.split(r"[,\n]", env.get("TUNESMITH_BASE_MODELS", "")), "TUNESMITH_BASE_MODELS"
        ),
        max_base_model_bytes=parse_bytes(
            env.get("TUNESMITH_MAX_BASE_MODEL_BYTES", "20GiB"), "TUNESMITH_MAX_BASE_MODEL_BYTES"
        ),
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)


def parse_choice(text: str, choices: tuple[str, ...], where: str) -> str:
    if text.strip().lower() not in choices:
        raise ValueError(f"{where}: {text!r} is not one of {', '.join(choices)}")
    return text.strip().lower()


def parse_flag(text: str, where: str) -> bool:
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``."""
    choice = parse_choice(text, ("1", "true", "yes", "on", "0", "false", "no", "off"), where)
    return choice in ("1", "true", "yes", "on")


def parse_base_models(entries, where: str) -> tuple[tuple[str, str], ...]:
    """``["tiny=/srv/models/tiny", "smol=HuggingFaceTB/SmolLM2-135M"]`` as (NAME, SOURCE)
    pairs (blank entries skipped; which names and sources are valid is the service's)."""
    pairs = []
    for entry in entries:
        if not entry.strip():
            continue
        name, sep, source = entry.partition("=")
        if not sep or not name.strip() or not source.strip():
            raise ValueError(f"{where}: {entry.strip()!r} is not NAME=FOLDER_FILE_OR_HUB_ID")
        pairs.append((name.strip(), source.strip()))
    return tuple(pairs)


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tb": 10**12, "tib": 2**40})


def parse_bytes(text: str, where: str) -> int:
    """``"20GiB"`` -> 21474836480; a bare number is bytes; ``0`` turns a limit off."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{where}: {text!r} is not a size such as 20GiB, 500MB or 0 (no limit)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
