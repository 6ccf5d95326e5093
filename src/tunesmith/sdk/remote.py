"""The remote client: every SDK call over HTTP to a tunesmith server.

    ts.configure(api_endpoint="http://127.0.0.1:8080", api_key="ts-...")

Same methods, records and typed errors as :class:`~tunesmith.sdk.clients.EmbeddedClient`:
records travel as proto-JSON (:mod:`tunesmith.wire`) and ``{"error": {"status": ...}}``
answers turn back into the same error classes (:func:`tunesmith.errors.from_status`).
``RequestOptions`` give each call its timeout and how many times a failed call is retried
(only calls that are safe to repeat, and only for connection failures and 429/5xx answers).
"""

from __future__ import annotations

import json
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx

from .. import errors, wire
from ..records.conversations import Conversation
from ..records.generation import Delta
from ..records.permissions import Grant, NewPermission
from ..records.tuning import CreateTunedModelRequest
from ..types import (
    Generation,
    GenerationConfig,
    Model,
    OperationRecord,
    TunedModel,
    TunedModelExport,
    ValidationLosses,
)
from ..wire import permissions as pwire
from .clients import RequestOptions

API_VERSION = "v1beta"
DEFAULT_TIMEOUT = 600.0  # generation on a CPU can take a while
RETRY_STATUS = {429, 500, 502, 503, 504}


class RemoteClient:
    def __init__(self, endpoint: str, api_key: str | None = None, *, transport=None):
        self.endpoint = endpoint.rstrip("/")
        self.api_key = api_key
        headers = {"x-goog-api-key": api_key} if api_key else {}
        self._http = httpx.Client(
            base_url=f"{self.endpoint}/{API_VERSION}/",
            headers=headers,
            timeout=DEFAULT_TIMEOUT,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"RemoteClient({self.endpoint!r})"

    def close(self) -> None:
        self._http.close()

    # -- transport -----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        opts: RequestOptions | None,
        *,
        json=None,
        params=None,
        idempotent: bool = True,
    ):
        opts = opts or RequestOptions()
        attempts = 1 + max(0, opts.retry or 0)
        timeout = opts.timeout if opts.timeout is not None else DEFAULT_TIMEOUT
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                resp = self._http.request(method, path, json=json, params=params, timeout=timeout)
            except httpx.TimeoutException as e:
                if last or not idempotent:
                    raise errors.DeadlineExceeded(
                        f"{method} {path}: no answer from {self.endpoint} within {timeout} s"
                    ) from e
            except httpx.TransportError as e:
                # A refused connection never reached the server: safe to retry any call.
                if last or not (idempotent or isinstance(e, httpx.ConnectError)):
                    raise errors.Internal(f"cannot reach tunesmith at {self.endpoint}: {e}") from e
            else:
                if resp.status_code < 400:
                    return resp.json() if resp.content else {}
                if last or not idempotent or resp.status_code not in RETRY_STATUS:
                    raise _error(resp)
            time.sleep(min(4.0, 0.25 * 2**attempt))
        raise AssertionError("unreachable")

    # -- tuned models --------------------------------------------------------------------

    def create_tuned_model(
        self, req: CreateTunedModelRequest, opts: RequestOptions | None = None
    ) -> OperationRecord:
        params = {"tunedModelId": req.id} if req.id else None
        body = wire.create_request_to_json(req)
        # With an id the create is safe to repeat (a repeat is ALREADY_EXISTS, not a twin).
        d = self._request(
            "POST", "tunedModels", opts, json=body, params=params, idempotent=bool(req.id)
        )
        return wire.operation_from_json(d)

    def get_tuned_model(self, name: str, opts: RequestOptions | None = None) -> TunedModel:
        return wire.tuned_model_from_json(self._request("GET", _path(name), opts))

    def list_tuned_models(
        self,
        page_size: int | None,
        page_token: str | None,
        filter: str | None,
        opts: RequestOptions | None = None,
    ) -> tuple[list[TunedModel], str | None]:
        params = {"pageSize": page_size, "pageToken": page_token, "filter": filter}
        d = self._request(
            "GET", "tunedModels", opts, params={k: v for k, v in params.items() if v is not None}
        )
        models = [wire.tuned_model_from_json(m) for m in d.get("tunedModels") or []]
        return models, d.get("nextPageToken") or None

    def update_tuned_model(
        self,
        name: str,
        changes: dict,
        update_mask: list[str] | None,
        opts: RequestOptions | None = None,
    ) -> TunedModel:
        params = (
            {"updateMask": ",".join(wire.camel(f) for f in update_mask)} if update_mask else None
        )
        d = self._request(
            "PATCH", _path(name), opts, json=wire.update_to_json(changes), params=params
        )
        return wire.tuned_model_from_json(d)

    def delete_tuned_model(self, name: str, opts: RequestOptions | None = None) -> None:
        self._request("DELETE", _path(name), opts)

    def get_validation_losses(
        self, name: str, opts: RequestOptions | None = None
    ) -> ValidationLosses:
        d = self._request("GET", f"{_path(name)}/validationLosses", opts)
        return wire.validation_losses_from_json(d)

    # -- operations ----------------------------------------------------------------------

    def get_operation(self, name: str, opts: RequestOptions | None = None) -> OperationRecord:
        return wire.operation_from_json(self._request("GET", _path(name), opts))

    def wait_operation(
        self, name: str, timeout: float, opts: RequestOptions | None = None
    ) -> OperationRecord:
        # The server holds the answer up to ``timeout``: leave the connection time to spare.
        limit = (opts.timeout if opts and opts.timeout is not None else DEFAULT_TIMEOUT) / 2
        body = wire.wait_request_to_json(min(timeout, limit))
        return wire.operation_from_json(
            self._request("POST", f"{_path(name)}:wait", opts, json=body)
        )

    def list_operations(
        self, name: str | None, opts: RequestOptions | None = None
    ) -> list[OperationRecord]:
        path = "operations" if name is None else f"{_path(name)}/operations"
        d = self._request("GET", path, opts)
        return [wire.operation_from_json(op) for op in d.get("operations") or []]

    def cancel_operation(self, name: str, opts: RequestOptions | None = None) -> OperationRecord:
        self._request("POST", f"{_path(name)}:cancel", opts)
        return self.get_operation(name, opts)

    # -- base models and generation ------------------------------------------------------

    def list_models(self, opts: RequestOptions | None = None) -> list[Model]:
        d = self._request("GET", "models", opts)
        return [wire.model_from_json(m) for m in d.get("models") or []]

    def get_model(self, name: str, opts: RequestOptions | None = None) -> Model:
        return wire.model_from_json(self._request("GET", _path(name), opts))

    def generate(
        self,
        model: str,
        prompt: str | Conversation,
        config: GenerationConfig,
        opts: RequestOptions | None = None,
    ) -> Generation:
        body = {
            **wire.conversation_to_json(prompt),
            "generationConfig": wire.generation_config_to_json(config or GenerationConfig()),
        }
        d = self._request("POST", f"{_path(model)}:generateContent", opts, json=body)
        return wire.generation_from_content_json(d)

    def generate_stream(
        self,
        model: str,
        prompt: str | Conversation,
        config: GenerationConfig,
        opts: RequestOptions | None = None,
    ) -> Iterator[Delta | Generation]:
        """Text as the server makes it (``?alt=sse``): Deltas, then the finished Generation."""
        body = {
            **wire.conversation_to_json(prompt),
            "generationConfig": wire.generation_config_to_json(config or GenerationConfig()),
        }
        timeout = (opts or RequestOptions()).timeout or DEFAULT_TIMEOUT
        path = f"{_path(model)}:streamGenerateContent"
        try:
            with self._http.stream(
                "POST", path, params={"alt": "sse"}, json=body, timeout=timeout
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _error(resp)
                for line in resp.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        err = chunk["error"]
                        raise errors.from_status(err.get("status", ""), err.get("message", ""))
                    if any("finishReason" in c for c in chunk.get("candidates") or []):
                        yield wire.generation_from_content_json(chunk)
                        return
                    texts = {
                        int(c.get("index", 0)): "".join(
                            p.get("text", "") for p in c["content"]["parts"]
                        )
                        for c in chunk.get("candidates") or []
                    }
                    yield Delta(texts)
        except httpx.TimeoutException as e:
            raise errors.DeadlineExceeded(f"{path}: no answer within {timeout} s") from e
        except httpx.TransportError as e:
            raise errors.Internal(f"cannot reach tunesmith at {self.endpoint}: {e}") from e

    def count_tokens(
        self, model: str, prompt: str | Conversation, opts: RequestOptions | None = None
    ) -> int:
        body = wire.conversation_to_json(prompt)
        d = self._request("POST", f"{_path(model)}:countTokens", opts, json=body)
        return int(d.get("totalTokens", 0))

    # -- exports -------------------------------------------------------------------------

    def export_tuned_model(
        self,
        name: str,
        format: str,
        path: Path,
        quantization: str | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        opts: RequestOptions | None = None,
    ) -> TunedModelExport:
        """Download the export as a tar (``archive=true``) and unpack it into ``path``."""
        params = {"format": format, "archive": "true"}
        if quantization is not None:
            params["quantization"] = quantization
        timeout = (opts or RequestOptions()).timeout or DEFAULT_TIMEOUT
        folder = Path(path).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with tempfile.TemporaryFile() as tmp:
                with self._http.stream(
                    "GET", f"{_path(name)}:export", params=params, timeout=timeout
                ) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        raise _error(resp)
                    total, done = int(resp.headers.get("content-length") or 0), 0
                    for chunk in resp.iter_bytes(1 << 20):
                        tmp.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress("download", done, total)
                tmp.seek(0)
                files = _unpack(tmp, folder)
        except httpx.TimeoutException as e:
            raise errors.DeadlineExceeded(f"{name}:export: no answer within {timeout} s") from e
        except httpx.TransportError as e:
            raise errors.Internal(f"cannot reach tunesmith at {self.endpoint}: {e}") from e
        return TunedModelExport(name, format, quantization or _quantization(files), folder, files)

    # -- permissions ---------------------------------------------------------------------

    def create_permission(
        self, parent: str, new: NewPermission, opts: RequestOptions | None = None
    ) -> Grant:
        body = pwire.new_permission_to_json(new)
        path = f"{_path(parent)}/permissions"
        return pwire.grant_from_json(self._request("POST", path, opts, json=body, idempotent=False))

    def list_permissions(
        self,
        parent: str,
        page_size: int | None,
        page_token: str | None,
        opts: RequestOptions | None = None,
    ) -> tuple[list[Grant], str | None]:
        params = {"pageSize": page_size, "pageToken": page_token}
        params = {k: v for k, v in params.items() if v is not None}
        d = self._request("GET", f"{_path(parent)}/permissions", opts, params=params)
        grants = [pwire.grant_from_json(p) for p in d.get("permissions") or []]
        return grants, d.get("nextPageToken") or None

    def get_permission(self, name: str, opts: RequestOptions | None = None) -> Grant:
        return pwire.grant_from_json(self._request("GET", _path(name), opts))

    def update_permission(
        self,
        name: str,
        role: str | None,
        update_mask: list[str],
        opts: RequestOptions | None = None,
    ) -> Grant:
        params = {"updateMask": ",".join(wire.camel(f) for f in update_mask)}
        body = {"role": role} if role is not None else {}
        return pwire.grant_from_json(
            self._request("PATCH", _path(name), opts, json=body, params=params)
        )

    def delete_permission(self, name: str, opts: RequestOptions | None = None) -> None:
        self._request("DELETE", _path(name), opts)

    def transfer_ownership(
        self, name: str, email_address: str, opts: RequestOptions | None = None
    ) -> None:
        body = {"emailAddress": email_address}
        path = f"{_path(name)}:transferOwnership"
        self._request("POST", path, opts, json=body, idempotent=False)


def _path(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise errors.InvalidArgument(f"name: expected a resource name, got {name!r}")
    return quote(name, safe="/:")


def _unpack(fileobj, folder: Path) -> list[Path]:
    """The tar's files (under one top folder) into ``folder``; nothing may land outside it."""
    files = []
    with tarfile.open(fileobj=fileobj, mode="r:") as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts[1:]
            if not member.isfile() or not parts or ".." in parts:
                raise errors.Internal(f"unexpected member {member.name!r} in the export archive")
            member.name = str(Path(*parts))
            tar.extract(member, folder, filter="data")
            files.append(folder / member.name)
    return sorted(files)


def _quantization(files: list[Path]) -> str | None:
    """The quantization a GGUF export's file names carry (NAME-Q8_0.gguf)."""
    for f in files:
        if f.suffix == ".gguf" and not f.name.endswith("-lora.gguf"):
            return f.stem.rsplit("-", 1)[-1]
    return None


def _error(resp: httpx.Response) -> errors.TunesmithError:
    try:
        err = resp.json()["error"]
        return errors.from_status(err.get("status", ""), err.get("message", resp.text))
    except (ValueError, KeyError, TypeError, AttributeError):
        return errors.Internal(f"HTTP {resp.status_code} from tunesmith: {resp.text[:500]}")
