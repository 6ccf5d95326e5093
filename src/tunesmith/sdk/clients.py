"""Clients: what the SDK's functions call. Embedded (in-process service) or remote (HTTP).

Both offer the same methods with the same records and the same typed errors; the SDK's
functions never know which one they hold. :func:`configure` chooses the default client.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..records.conversations import Conversation
from ..records.generation import Delta
from ..records.permissions import Grant, NewPermission
from ..records.tuning import CreateTunedModelRequest
from ..settings import Settings, get_settings
from ..types import (
    Generation,
    GenerationConfig,
    Model,
    OperationRecord,
    TunedModel,
    TunedModelExport,
    ValidationLosses,
)

if TYPE_CHECKING:  # the store and the service load on first use, not on import
    from ..runtime import Runtime
    from ..service import Service


@dataclasses.dataclass
class RequestOptions:
    """Per-call options, as in Google's SDK: ``timeout`` in seconds, ``retry`` attempts."""

    timeout: float | None = None
    retry: int | None = None

    @classmethod
    def of(cls, value) -> RequestOptions:
        if value is None:
            return cls()
        if isinstance(value, RequestOptions):
            return value
        if isinstance(value, dict):
            retry = value.get("retry")
            if retry is not None and not isinstance(retry, int):
                # google.api_core Retry objects: honour "retry", not its schedule.
                retry = 3
            return cls(timeout=value.get("timeout"), retry=retry)
        raise TypeError(
            f"request_options: expected a dict or RequestOptions, not {type(value).__name__}"
        )


class Client(Protocol):
    """The contract every client keeps: records in, records out, typed errors raised.

    Each method is the service's method of the same name (:mod:`tunesmith.service`), with the
    caller's identity left out (a server knows it from the API key) and per-call ``opts``
    added; :class:`EmbeddedClient` calls the service in this process, and
    :class:`~tunesmith.sdk.remote.RemoteClient` calls one route of a server through
    :mod:`tunesmith.wire`. ``tests/test_contract.py`` holds the three and the routes together.
    """

    def create_tuned_model(
        self, req: CreateTunedModelRequest, opts: RequestOptions | None = None
    ) -> OperationRecord: ...
    def get_tuned_model(self, name: str, opts: RequestOptions | None = None) -> TunedModel: ...
    def list_tuned_models(
        self,
        page_size: int | None,
        page_token: str | None,
        filter: str | None,
        opts: RequestOptions | None = None,
    ) -> tuple[list[TunedModel], str | None]: ...
    def update_tuned_model(
        self,
        name: str,
        changes: dict,
        update_mask: list[str] | None,
        opts: RequestOptions | None = None,
    ) -> TunedModel: ...
    def delete_tuned_model(self, name: str, opts: RequestOptions | None = None) -> None: ...
    def get_validation_losses(
        self, name: str, opts: RequestOptions | None = None
    ) -> ValidationLosses: ...
    def get_operation(self, name: str, opts: RequestOptions | None = None) -> OperationRecord: ...
    def wait_operation(
        self, name: str, timeout: float, opts: RequestOptions | None = None
    ) -> OperationRecord: ...
    def list_operations(
        self, name: str | None, opts: RequestOptions | None = None
    ) -> list[OperationRecord]: ...
    def cancel_operation(
        self, name: str, opts: RequestOptions | None = None
    ) -> OperationRecord: ...
    def list_models(self, opts: RequestOptions | None = None) -> list[Model]: ...
    def get_model(self, name: str, opts: RequestOptions | None = None) -> Model: ...
    def generate(
        self,
        model: str,
        prompt: str | Conversation,
        config: GenerationConfig,
        opts: RequestOptions | None = None,
    ) -> Generation: ...
    def generate_stream(
        self,
        model: str,
        prompt: str | Conversation,
        config: GenerationConfig,
        opts: RequestOptions | None = None,
    ) -> Iterator[Delta | Generation]: ...
    def count_tokens(
        self, model: str, prompt: str | Conversation, opts: RequestOptions | None = None
    ) -> int: ...
    def create_permission(
        self, parent: str, new: NewPermission, opts: RequestOptions | None = None
    ) -> Grant: ...
    def list_permissions(
        self,
        parent: str,
        page_size: int | None,
        page_token: str | None,
        opts: RequestOptions | None = None,
    ) -> tuple[list[Grant], str | None]: ...
    def get_permission(self, name: str, opts: RequestOptions | None = None) -> Grant: ...
    def update_permission(
        self,
        name: str,
        role: str | None,
        update_mask: list[str],
        opts: RequestOptions | None = None,
    ) -> Grant: ...
    def delete_permission(self, name: str, opts: RequestOptions | None = None) -> None: ...
    def transfer_ownership(
        self, name: str, email_address: str, opts: RequestOptions | None = None
    ) -> None: ...
    def export_tuned_model(
        self,
        name: str,
        format: str,
        path: Path,
        quantization: str | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        opts: RequestOptions | None = None,
    ) -> TunedModelExport: ...


def keep_running(client: Client) -> None:
    """While a caller waits on a job: make sure something runs it. An embedded client starts
    the home's worker if it has left; a server runs its own workers (nothing to do)."""
    if isinstance(client, EmbeddedClient):
        client.runtime.job_queued()


class EmbeddedClient:
    """The service in this process; tuning runs in the home's background worker process, and
    generation in the home's generation server (:mod:`tunesmith.sdk.warm`), which keeps the
    models loaded between scripts. ``generation_server=False`` generates in this process.

    Every method calls the service's method of the same name, as the open caller (None)."""

    def __init__(self, settings: Settings | None = None, *, generation_server: bool = True):
        from .warm import GenerationServer

        self.settings = settings or get_settings()
        self.generation_server = GenerationServer(self.settings, enabled=generation_server)
        self._runtime: Runtime | None = None
        self._runtime_lock = threading.Lock()

    @property
    def runtime(self) -> Runtime:
        """This home's store, service and embedded worker, opened on first use (generating on
        the generation server needs none, so ``tunesmith generate`` starts quicker)."""
        with self._runtime_lock:
            if self._runtime is None:
                from ..runtime import Runtime

                self._runtime = Runtime(self.settings, worker="embedded")
            return self._runtime

    @property
    def service(self) -> Service:
        return self.runtime.service

    # -- tuned models and operations -----------------------------------------------------

    def create_tuned_model(
        self, req: CreateTunedModelRequest, opts: RequestOptions | None = None
    ) -> OperationRecord:
        return self.service.tuning.create_tuned_model(req)

    def get_tuned_model(self, name: str, opts: RequestOptions | None = None) -> TunedModel:
        return self.service.tuning.get_tuned_model(name)

    def list_tuned_models(
        self,
        page_size: int | None,
        page_token: str | None,
        filter: str | None,
        opts: RequestOptions | None = None,
    ) -> tuple[list[TunedModel], str | None]:
        return self.service.tuning.list_tuned_models(page_size, page_token, filter)

    def update_tuned_model(
        self,
        name: str,
        changes: dict,
        update_mask: list[str] | None,
        opts: RequestOptions | None = None,
    ) -> TunedModel:
        return self.service.tuning.update_tuned_model(name, changes, update_mask)

    def delete_tuned_model(self, name: str, opts: RequestOptions | None = None) -> None:
        self.service.tuning.delete_tuned_model(name)

    def get_validation_losses(
        self, name: str, opts: RequestOptions | None = None
    ) -> ValidationLosses:
        return self.service.tuning.get_validation_losses(name)

    def get_operation(self, name: str, opts: RequestOptions | None = None) -> OperationRecord:
        return self.service.tuning.get_operation(name)

    def wait_operation(
        self, name: str, timeout: float, opts: RequestOptions | None = None
    ) -> OperationRecord:
        return self.service.tuning.wait_operation(name, timeout)

    def list_operations(
        self, name: str | None, opts: RequestOptions | None = None
    ) -> list[OperationRecord]:
        return self.service.tuning.list_operations(name)

    def cancel_operation(self, name: str, opts: RequestOptions | None = None) -> OperationRecord:
        return self.service.tuning.cancel_operation(name)

    # -- base models and generation (on the generation server when it can answer) ---------

    def list_models(self, opts: RequestOptions | None = None) -> list[Model]:
        return self.service.generation.list_models()

    def get_model(self, name: str, opts: RequestOptions | None = None) -> Model:
        return self.service.generation.get_model(name)

    def generate(
        self,
        model: str,
        prompt: str | Conversation,
        config: GenerationConfig,
        opts: RequestOptions | None = None,
    ) -> Generation:
        return self.generation_server.call(
            model,
            prompt,
            lambda remote: remote.generate(model, prompt, config, only_timeout(opts)),
            lambda: self.service.generation.generate(model, prompt, config),
        )

    def generate_stream(
        self,
        model: str,
        prompt: str | Conversation,
        config: GenerationConfig,
        opts: RequestOptions | None = None,
    ) -> Iterator[Delta | Generation]:
        return self.generation_server.stream(
            model,
            prompt,
            lambda remote: remote.generate_stream(model, prompt, config, only_timeout(opts)),
            lambda: iter(self.service.generation.generate_stream(model, prompt, config)),
        )

    def count_tokens(
        self, model: str, prompt: str | Conversation, opts: RequestOptions | None = None
    ) -> int:
        return self.generation_server.call(
            model,
            prompt,
            lambda remote: remote.count_tokens(model, prompt, only_timeout(opts)),
            lambda: self.service.generation.count_tokens(model, prompt),
        )

    # -- permissions and exports ---------------------------------------------------------

    def create_permission(
        self, parent: str, new: NewPermission, opts: RequestOptions | None = None
    ) -> Grant:
        return self.service.permissions.create_permission(parent, new)

    def list_permissions(
        self,
        parent: str,
        page_size: int | None,
        page_token: str | None,
        opts: RequestOptions | None = None,
    ) -> tuple[list[Grant], str | None]:
        return self.service.permissions.list_permissions(parent, page_size, page_token)

    def get_permission(self, name: str, opts: RequestOptions | None = None) -> Grant:
        return self.service.permissions.get_permission(name)

    def update_permission(
        self,
        name: str,
        role: str | None,
        update_mask: list[str],
        opts: RequestOptions | None = None,
    ) -> Grant:
        return self.service.permissions.update_permission(name, role, update_mask)

    def delete_permission(self, name: str, opts: RequestOptions | None = None) -> None:
        self.service.permissions.delete_permission(name)

    def transfer_ownership(
        self, name: str, email_address: str, opts: RequestOptions | None = None
    ) -> None:
        self.service.permissions.transfer_ownership(name, email_address)

    def export_tuned_model(
        self,
        name: str,
        format: str,
        path: Path,
        quantization: str | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        opts: RequestOptions | None = None,
    ) -> TunedModelExport:
        return self.service.exports.export_tuned_model(name, format, path, quantization, progress)


def only_timeout(opts: RequestOptions | None) -> RequestOptions:
    """The caller's deadline and no retries: the generation server's answers are final, as
    the service's are in this process."""
    return RequestOptions(timeout=opts.timeout if opts else None)


_lock = threading.Lock()
_default: Client | None = None
_configured: dict = {}


def configure(
    *,
    api_endpoint: str | None = None,
    api_key: str | None = None,
    home: str | None = None,
    client: Client | None = None,
    transport: str | None = None,
    **_ignored,
) -> None:
    """Choose the default client, as ``google.generativeai.configure`` does.

    ``api_endpoint`` (or ``TUNESMITH_API_ENDPOINT``) sends every call to a tunesmith server;
    without one the service runs in this process over ``home`` (``TUNESMITH_HOME``).
    ``transport`` is accepted for compatibility; tunesmith speaks REST.
    """
    global _default
    with _lock:
        _configured.clear()
        _configured.update(api_endpoint=api_endpoint, api_key=api_key, home=home)
        _default = client


def default_client() -> Client:
    global _default
    with _lock:
        if _default is None:
            settings = get_settings()
            endpoint = _configured.get("api_endpoint") or settings.api_endpoint
            if endpoint:
                from .remote import RemoteClient

                key = _configured.get("api_key") or settings.api_key
                _default = RemoteClient(endpoint, api_key=key)
            else:
                _default = EmbeddedClient(get_settings(home=_configured.get("home")))
        return _default
