"""The service layer: the one place where tunesmith's rules live.

:class:`Service` bundles the parts over one store; the HTTP API and the embedded SDK are thin
adapters over it. A server builds it with ``offered_base_models_only=True``: its callers name
only the base models the operator offers (:mod:`tunesmith.service.catalog`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..records.tuning import CreateTunedModelRequest
from ..settings import Settings, get_settings
from ..store import Store
from ..store.permissions import PermissionStore
from .access import Access, Caller
from .catalog import BaseModelCatalog
from .exports import ExportService
from .files import FileService
from .fine_tuning import FineTuningService
from .generation import GenerationService
from .imports import ImportService
from .model_names import ModelDirectory
from .permissions import PermissionService
from .tuning import TuningService

if TYPE_CHECKING:
    from ..serving import ModelServer


class Service:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        model_server: ModelServer | None = None,
        on_enqueue: Callable[[], None] | None = None,
        offered_base_models_only: bool = False,
        hub_api=None,
    ):
        """``offered_base_models_only``: callers are remote (a server's), so they name only
        the base models the operator offers; False for the user's own process (embedded SDK,
        CLI). ``hub_api``: an ``HfApi`` for hub size checks (None: huggingface_hub's)."""
        self.settings = settings or get_settings()
        self.base_models = BaseModelCatalog(self.settings, offered_base_models_only, hub_api)
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.store = store or Store(self.settings.database_url)
        # One authorization rule (service/access.py) over this store, shared by every part.
        self.access = Access(PermissionStore(self.store))
        self.tuning = TuningService(
            self.settings, self.store, on_enqueue, self.base_models, self.access
        )
        self.permissions = PermissionService(self.store, self.access)
        self.generation = GenerationService(
            self.settings, self.store, model_server, self.base_models, self.access
        )
        self.exports = ExportService(self.settings, self.store, self.access, self.base_models)
        self.imports = ImportService(self.settings, self.store, self.base_models)
        self.files = FileService(self.settings, self.store)
        self.models = ModelDirectory(self.settings, self.store, self.tuning, self.generation)
        self.fine_tuning = FineTuningService(self.tuning, self.files, self.models)
        self.keys = self.permissions.keys  # API keys: who a request's caller is

    def authenticate(self, secret: str | None) -> Caller | None:
        """The caller a request's API key names (its user and groups); None when the server
        runs open (no keys). A missing, unknown or revoked key raises Unauthenticated."""
        key = self.keys.authenticate(secret)
        return None if key is None else Caller(key.user, frozenset(key.groups))

    def close(self) -> None:
        self.store.close()


__all__ = ["BaseModelCatalog", "CreateTunedModelRequest", "Service"]
