"""The service layer: the one place where tunesmith's rules live.

:class:`Service` bundles the parts over one store; the HTTP API and the embedded SDK are thin
adapters over it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..settings import Settings, get_settings
from ..store import Store
from .exports import ExportService
from .generation import GenerationService
from .imports import ImportService
from .permissions import PermissionService
from .tuning import CreateTunedModelRequest, TuningService

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
    ):
        self.settings = settings or get_settings()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.store = store or Store(self.settings.database_url)
        self.tuning = TuningService(self.settings, self.store, on_enqueue)
        self.permissions = PermissionService(self.store, self.tuning.access)
        self.generation = GenerationService(self.settings, self.store, model_server)
        self.exports = ExportService(self.settings, self.store, self.tuning.access)
        self.imports = ImportService(self.settings, self.store)

    def close(self) -> None:
        self.store.close()


__all__ = ["CreateTunedModelRequest", "Service"]
