"""Which base models a caller may name: one rule for every way in.

**On one's own machine** (the embedded SDK, the CLI, the service built with
``offered_only=False``) a caller names any base model: a registry name or an alias of the
default, a model folder, a ``.gguf`` file, a Hugging Face id. That is the user's own disk and
network.

**On a server** (the service built with ``offered_only=True``, which is what the HTTP API
builds, whatever its dialect) a caller names only what the operator offers:

- the registry's models and the aliases of the default (``models/text-bison-001``, ...);
- the default base model itself (``TUNESMITH_DEFAULT_BASE_MODEL``), as configured;
- the operator's own base models (``TUNESMITH_BASE_MODELS`` / ``tunesmith serve
  --base-model NAME=SOURCE``), as ``models/NAME`` or by SOURCE exactly as configured;
- tuned models the caller may read (the tuning service's rule, through access).

:meth:`BaseModelCatalog.list` is what ``GET models`` shows. Anything else gets one answer,
decided from the string alone (400 to tune from it, 404 to look it up or generate with it):
the file system and the hub are never consulted for a name a caller made up, so the answer
cannot tell whether such a path or repository exists.

**Hub downloads.** Before a caller's request starts downloading a Hugging Face model (one not
fetched yet), the hub is asked for the repository's file sizes and the download is refused
above ``TUNESMITH_MAX_BASE_MODEL_BYTES`` (and refused when it has no safetensors weights).
Names stored in records (a tuned model's base) were checked when the record was made:
:meth:`BaseModelCatalog.stored` resolves them without the rule.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..engine import base_models, hub
from ..errors import FailedPrecondition, InvalidArgument, NotFound, TunesmithError
from ..settings import Settings

OFFERED_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
CONFIGURED = "TUNESMITH_BASE_MODELS / --base-model"


class BaseModelCatalog:
    def __init__(self, settings: Settings, offered_only: bool = False, hub_api=None):
        self.settings = settings
        self.offered_only = offered_only
        self.hub_api = hub_api
        """An ``HfApi`` to ask about hub models (None: huggingface_hub's own)."""
        self.offered = _check_offered(settings.base_models)
        """The operator's own base models: NAME (of ``models/NAME``) -> SOURCE."""
        self._sources = self._configured_sources()

    # -- names callers give ---------------------------------------------------------------

    def source(self, name) -> base_models.BaseModelSpec:
        """The base model a caller names to tune from (or to import an adapter over): a name
        it may not use is an invalid argument (400), its size checked if it is downloaded."""
        spec = self._named(name, InvalidArgument)
        self._check_download(spec)
        return spec

    def named(self, name, *, download: bool = True) -> base_models.BaseModelSpec:
        """The base model a caller looks up (``get``) or generates with: a name it may not use
        is not found (404), as an unknown model is.

        ``download``: the request may fetch it (generate), so a hub model not fetched yet has
        its size checked first; reading its record (``get``) does not.
        """
        spec = self._named(name, NotFound)
        if download:
            self._check_download(spec)
        return spec

    def list(self) -> list[base_models.BaseModelSpec]:
        """What callers may name: the installed registry models, the operator's own, and the
        default when it is a folder, a .gguf file or a hub id (what aliases resolve to)."""
        specs = base_models.registered_models()
        for name, source in self.offered.items():
            try:
                specs.append(base_models.offered_spec(name, source))
            except TunesmithError:
                pass  # gone since the server started: refused where it is named
        default = self.settings.default_base_model
        try:
            spec = self.stored(default)
        except TunesmithError:
            return specs  # a misconfigured default is reported where it is used
        if all(s.name != spec.name for s in specs):
            specs.append(spec)
        return specs

    def stored(self, name: str) -> base_models.BaseModelSpec:
        """The base model a stored record names (checked when the record was made)."""
        return base_models.resolve(name, self.settings.default_base_model, self.offered)

    # -- the rule ---------------------------------------------------------------------------

    def _named(self, name, refusal: type[TunesmithError]) -> base_models.BaseModelSpec:
        if not self.offered_only:
            return self.stored(name)
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgument("base_model: a model name is required")
        short = name.removeprefix("models/")
        if name in base_models.registry_names() or f"models/{name}" in base_models.registry_names():
            return self.stored(name)  # a registry model or an alias of the default
        if short in self.offered:
            return self.stored(f"models/{short}")
        configured = self._sources.get(short.rstrip("/") or short)
        if configured is not None:
            return self.stored(configured)
        # One answer for every other string: nothing on disk or on the hub was looked at.
        raise refusal(
            f"base model '{name}' is not offered by this server; the server's list of models "
            "(GET /v1beta/models) names the ones it offers"
        )

    def _configured_sources(self) -> dict[str, str]:
        """The sources the operator wrote (and the folders they are), each to the name it is
        resolved as: ``models/NAME``, or the default as configured."""
        sources: dict[str, str] = {}
        default = self.settings.default_base_model
        pairs = [(f"models/{n}", s) for n, s in self.offered.items()]
        if default.removeprefix("models/") not in self.offered:
            pairs.append((default, default))
        for resolved_as, source in pairs:
            written = source.removeprefix("models/").rstrip("/") or source
            sources.setdefault(written, resolved_as)
            path = Path(written).expanduser()
            if path.exists():  # the operator's own path, so looking at it tells nobody much
                sources.setdefault(str(path.resolve()), resolved_as)
        return sources

    def _check_download(self, spec: base_models.BaseModelSpec) -> None:
        limit = self.settings.max_base_model_bytes
        if spec.source["kind"] != "hub" or not limit or hub.offline():
            return
        if base_models.is_materialized(spec, self.settings.base_models_dir):
            return
        size = hub.download_size(spec.source["repo_id"], self.hub_api)
        if size.nbytes > limit:
            raise FailedPrecondition(
                f"base model {spec.name}: downloading {size.repo_id} would fetch "
                f"{_human(size.nbytes)} in {len(size.files)} files, over the limit of "
                f"{_human(limit)} (TUNESMITH_MAX_BASE_MODEL_BYTES)"
            )


def _check_offered(pairs) -> dict[str, str]:
    """The operator's NAME -> SOURCE pairs, checked (later pairs win: flags after env)."""
    registry = base_models.registry_names()
    offered: dict[str, str] = {}
    for raw, source in pairs:
        name = raw.removeprefix("models/")
        if not OFFERED_NAME.match(name):
            raise InvalidArgument(
                f"{CONFIGURED}: '{raw}' is not a model name (lower-case letters, digits, '.', "
                "'_' and '-', up to 64 characters)"
            )
        if f"models/{name}" in registry or name in registry:
            raise InvalidArgument(
                f"{CONFIGURED}: '{raw}' is already a registered model or alias; pick another name"
            )
        try:
            base_models.offered_spec(name, source)
        except TunesmithError as e:
            raise InvalidArgument(f"{CONFIGURED}: {raw}={source}: {e.message}") from None
        offered[name] = source
    return offered


def _human(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
