"""The synchronous client. Every method builds its request with ``_core`` and sends it with retries."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _core
from ._core import Call, FiltersLike, Id, MemoryLike, MessageLike, RequestSpec
from ._models import (
    Cube,
    ImportResult,
    KeyCreated,
    KeyRevoked,
    Memory,
    MemoryHistory,
    SearchResponse,
    Tenant,
    TenantCreated,
)
from ._retry import RETRY_STATUSES, RetryPolicy, is_retryable_request, parse_retry_after
from ._streams import ExportTarget, Upload, UploadSource, open_sink

T = TypeVar("T")

__all__ = ["Client"]


class Client:
    """Synchronous memcubed client.

    ``base_url`` and ``api_key`` default to ``MEMCUBED_URL`` and ``MEMCUBED_API_KEY``. Requests that are
    safe to repeat are retried ``max_retries`` times on connection errors, 429 and 502/503/504; every
    POST carries a fresh ``Idempotency-Key`` (the same across its retries) so a retried write is applied
    once. ``transport`` replaces httpx's network transport (tests, proxies); ``sleep`` replaces
    ``time.sleep`` between retries.

    Use it as a context manager, or call :meth:`close`, so pooled connections are released.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_keys: bool = True,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self._config = _core.resolve_config(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            retry_policy=retry_policy,
            idempotency_keys=idempotency_keys,
            headers=headers,
        )
        self._http = httpx.Client(
            base_url=self._config.base_url,
            headers=_core.default_headers(self._config),
            timeout=self._config.timeout,
            transport=transport,
        )
        self._sleep: Callable[[float], Any] = sleep or time.sleep
        self.tenants = Tenants(self)
        self.keys = Keys(self)
        self.cubes = Cubes(self)
        self.memories = Memories(self)
        self.messages = Messages(self)

    # --- lifecycle -----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def max_retries(self) -> int:
        return self._config.retry.max_retries

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    def close(self) -> None:
        """Close pooled connections. The client cannot be used afterwards."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

    # --- top-level operations ------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: the process is up."""
        return self._send(_core.health())

    def ready(self) -> dict[str, Any]:
        """``GET /readyz``: database and index are ready. Raises :class:`ServerError` when not; no retries."""
        return self._send(_core.ready())

    def search(
        self,
        query: str,
        cube_ids: Id | Sequence[Id],
        *,
        top_k: int = 10,
        filters: FiltersLike | None = None,
        mode: str = "fast",
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> SearchResponse:
        """Semantic search over one or more cubes. Extra keywords are sent in the body as they are."""
        return self._send(
            _core.search(
                query,
                cube_ids,
                top_k=top_k,
                filters=filters,
                mode=mode,
                idempotency_key=idempotency_key,
                **extra,
            )
        )

    # --- transport -----------------------------------------------------------------------------------

    def _send(self, call: Call[T]) -> T:
        response = self._request(call.request)
        return _core.decode(call, response)

    def _request(
        self,
        spec: RequestSpec,
        *,
        stream: bool = False,
        upload: Upload | None = None,
    ) -> httpx.Response:
        """Send with retries; return a successful response (unread when ``stream``) or raise."""
        headers = _core.request_headers(self._config, spec)
        policy = self._config.retry
        retryable = spec.retry and is_retryable_request(spec.method, headers)
        attempts = 1 + (policy.max_retries if retryable else 0)
        for attempt in range(attempts):
            request = self._http.build_request(
                spec.method,
                spec.path,
                params=spec.params,
                json=spec.json,
                content=upload.chunks() if upload is not None else None,
                headers=headers,
            )
            last = attempt + 1 >= attempts
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if last:
                    raise _core.connection_error(exc, request) from exc
                self._sleep(policy.backoff(attempt))
                continue
            except httpx.RequestError as exc:  # e.g. an undecodable body: repeating would not help
                raise _core.connection_error(exc, request) from exc
            if response.is_success:
                return response
            if stream:
                try:
                    response.read()
                except httpx.TransportError:
                    pass
                finally:
                    response.close()
            if not last and response.status_code in RETRY_STATUSES:
                self._sleep(policy.backoff(attempt, parse_retry_after(response.headers.get("retry-after"))))
                continue
            raise _core.error_from_response(response)
        raise AssertionError("unreachable")  # pragma: no cover


class _Resource:
    def __init__(self, client: Client) -> None:
        self._client = client


class Tenants(_Resource):
    """Admin: tenants. Needs an admin-scope key."""

    def create(self, name: str, *, idempotency_key: str | None = None) -> TenantCreated:
        """Create a tenant and its first API key (shown only once)."""
        return self._client._send(_core.create_tenant(name, idempotency_key=idempotency_key))

    def list(self) -> builtins.list[Tenant]:
        return self._client._send(_core.list_tenants())


class Keys(_Resource):
    """Admin: API keys."""

    def create(
        self, tenant_id: Id, name: str | None = None, *, idempotency_key: str | None = None
    ) -> KeyCreated:
        """Create another key for a tenant (shown only once)."""
        return self._client._send(_core.create_key(tenant_id, name, idempotency_key=idempotency_key))

    def revoke(self, key_id: Id) -> KeyRevoked:
        return self._client._send(_core.revoke_key(key_id))


class Cubes(_Resource):
    """MemCubes: named containers of memories within a tenant."""

    def create(
        self,
        name: str,
        description: str | None = None,
        owner_id: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Cube:
        return self._client._send(
            _core.create_cube(name, description, owner_id, idempotency_key=idempotency_key)
        )

    def list(self) -> builtins.list[Cube]:
        return self._client._send(_core.list_cubes())

    def get(self, cube_id: Id) -> Cube:
        return self._client._send(_core.get_cube(cube_id))

    def delete(self, cube_id: Id) -> None:
        self._client._send(_core.delete_cube(cube_id))

    def export(self, cube_id: Id, path_or_file: ExportTarget) -> int:
        """Stream the cube's JSON Lines export into a path or binary file; return the bytes written.

        A path is written atomically (temporary file, then rename) so a failed export leaves no
        partial file behind. Nothing is created when the server refuses the export.
        """
        response = self._client._request(_core.export_cube(cube_id), stream=True)
        written = 0
        try:
            with open_sink(path_or_file) as sink:
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                    written += len(chunk)
        except httpx.RequestError as exc:
            raise _core.connection_error(exc, response.request) from exc
        finally:
            response.close()
        return written

    def import_(
        self, cube_id: Id, path_or_file: UploadSource, *, idempotency_key: str | None = None
    ) -> ImportResult:
        """Stream a JSON Lines export (path or file object) into a cube. The file is read in chunks."""
        upload = Upload(path_or_file)
        call = _core.import_cube(
            cube_id, size=upload.size, rewindable=upload.rewindable, idempotency_key=idempotency_key
        )
        response = self._client._request(call.request, upload=upload)
        return _core.decode(call, response)


class Memories(_Resource):
    """Memories in cubes: add, list, get, update (versioned), soft delete, restore, history."""

    def add(
        self,
        cube_id: Id,
        content: str,
        *,
        memory_type: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        occurred_at: datetime | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: Mapping[str, Any] | None = None,
        importance: float | None = None,
        idempotency_key: str | None = None,
    ) -> Memory:
        """Add one memory. ``occurred_at`` (event time) must be timezone-aware."""
        memory = _core.memory_in(
            content,
            memory_type=memory_type,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            occurred_at=occurred_at,
            tags=tags,
            metadata=metadata,
            source=source,
            importance=importance,
        )
        return self.add_many(cube_id, [memory], idempotency_key=idempotency_key)[0]

    def add_many(
        self, cube_id: Id, memories: Sequence[MemoryLike], *, idempotency_key: str | None = None
    ) -> builtins.list[Memory]:
        """Add a batch in one request; the server stores all or none."""
        return self._client._send(_core.add_memories(cube_id, memories, idempotency_key=idempotency_key))

    def get(self, memory_id: Id) -> Memory:
        return self._client._send(_core.get_memory(memory_id))

    def list(
        self,
        cube_id: Id,
        *,
        memory_type: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        tag: str | None = None,
        status: str | None = None,
        occurred_after: datetime | None = None,
        occurred_before: datetime | None = None,
        page_size: int = 100,
    ) -> Iterator[Memory]:
        """Iterate over every matching memory, fetching ``page_size`` (server maximum 500) at a time.

        ``occurred_after``/``occurred_before`` bound the event time. Arguments are checked now; the first
        page is fetched on the first ``next()``.
        """
        _core.check_list_arguments(page_size, occurred_after, occurred_before)
        return self._iterate(
            cube_id,
            memory_type=memory_type,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            tag=tag,
            status=status,
            occurred_after=occurred_after,
            occurred_before=occurred_before,
            page_size=page_size,
        )

    def _iterate(self, cube_id: Id, *, page_size: int, **filters: Any) -> Iterator[Memory]:
        cursor: str | None = None
        while True:
            page = self._client._send(
                _core.list_memories_page(cube_id, cursor=cursor, limit=page_size, **filters)
            )
            yield from page.memories
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def update(self, memory_id: Id, *, reason: str = "update", **fields: Any) -> Memory:
        """Change fields; the server keeps the prior state as a version with ``reason``."""
        return self._client._send(_core.update_memory(memory_id, reason=reason, **fields))

    def delete(self, memory_id: Id) -> Memory:
        """Soft delete: the memory stays, with status ``deleted``, and can be restored."""
        return self._client._send(_core.delete_memory(memory_id))

    def restore(self, memory_id: Id, *, idempotency_key: str | None = None) -> Memory:
        return self._client._send(_core.restore_memory(memory_id, idempotency_key=idempotency_key))

    def history(self, memory_id: Id) -> MemoryHistory:
        return self._client._send(_core.memory_history(memory_id))


class Messages(_Resource):
    """Conversation turns, stored as episodic memories with their event time (no LLM involved)."""

    def add(
        self,
        cube_id: Id,
        session_id: str,
        messages: Sequence[MessageLike],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> builtins.list[Memory]:
        return self._client._send(
            _core.add_messages(
                cube_id,
                session_id,
                messages,
                user_id=user_id,
                agent_id=agent_id,
                idempotency_key=idempotency_key,
            )
        )
