"""The synchronous client. Every method builds its request with ``_core`` and sends it with retries."""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx

from . import _core
from ._core import (
    BudgetLike,
    Call,
    FeedbackSignal,
    FiltersLike,
    ForgetPolicy,
    Id,
    KeyPermission,
    MemoryLike,
    MemoryOrder,
    MessageLike,
    RequestSpec,
    SearchMode,
    TimeoutLike,
)
from ._models import (
    Activation,
    ActivationStats,
    Adapter,
    AnswerResponse,
    ArchiveImportResult,
    ContextResponse,
    Cube,
    EntityList,
    ForgetRequest,
    FuseResult,
    GenerateResponse,
    GraphPage,
    ImportResult,
    Job,
    KeyCreated,
    KeyInfo,
    KeyRevoked,
    Memory,
    MemoryHistory,
    MemoryLinks,
    MergeResult,
    Policy,
    PolicyPreview,
    PurgeResult,
    RestoreResult,
    RoutingStats,
    SearchResponse,
    Snapshot,
    Tenant,
    TenantCreated,
    TenantQuotas,
    WhoAmI,
    WriteResult,
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
    once. ``read_your_writes``: every request names the last change this client wrote
    (``X-Memcubed-Min-Seq``), so that behind a load balancer any API process answers it as if it had taken
    the writes itself (docs/scaling.md). ``transport`` replaces httpx's network transport (tests, proxies);
    ``sleep`` replaces
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
        read_your_writes: bool = False,
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
        self._read_your_writes = read_your_writes
        self.last_seq = 0  # the highest X-Memcubed-Seq a write of this client answered with
        self.tenants = Tenants(self)
        self.keys = Keys(self)
        self.cubes = Cubes(self)
        self.memories = Memories(self)
        self.messages = Messages(self)
        self.forget_requests = ForgetRequests(self)
        self.activations = Activations(self)
        self.adapters = Adapters(self)
        self.jobs = Jobs(self)
        self.snapshots = Snapshots(self)
        self.routing = RoutingResource(self)

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

    def whoami(self) -> WhoAmI:
        """``GET /v1/whoami``: what this key may do (scope, tenant, granted cubes, permission)."""
        return self._send(_core.whoami())

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
        mode: SearchMode | None = None,
        explain: bool = False,
        budget: BudgetLike | None = None,
        use_cache: bool | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> SearchResponse:
        """Search one or more cubes. ``mode="fast"`` (the default) is dense only; ``"fine"`` fuses dense, BM25,
        SPLADE, time and graph channels and sees a memory once it is enriched (see ``cubes.wait_enriched``).
        ``explain=True`` fills each hit's ``explain`` with its per-channel ranks and scores. ``budget``
        (``"low" | "mid" | "high" | "auto"`` or limits) lets the server pick the retrieval tier instead of
        ``mode`` and fills ``routing``. Extra keywords are sent in the body as they are."""
        return self._send(
            _core.search(
                query,
                cube_ids,
                top_k=top_k,
                filters=filters,
                mode=mode,
                explain=explain,
                budget=budget,
                use_cache=use_cache,
                idempotency_key=idempotency_key,
                **extra,
            )
        )

    def context(
        self,
        query: str,
        cube_ids: Id | Sequence[Id],
        *,
        top_k: int = 10,
        budget: BudgetLike | None = None,
        use_cache: bool | None = None,
        **extra: Any,
    ) -> ContextResponse:
        """The context an answer model should read for ``query``, assembled within ``budget`` (default
        ``auto``): ``context`` text, its ``items``, its ``tokens``, ``abstained``, ``full_context`` and
        ``routing`` (tiers, reasons, cost, cache)."""
        return self._send(_core.context(query, cube_ids, top_k=top_k, budget=budget, use_cache=use_cache,
                                           **extra))

    def answer(
        self,
        query: str,
        cube_ids: Id | Sequence[Id],
        *,
        top_k: int = 10,
        budget: BudgetLike | None = None,
        use_cache: bool | None = None,
        timeout: TimeoutLike | None = None,
        **extra: Any,
    ) -> AnswerResponse:
        """:meth:`context`, then an answer from it: ``answer`` and ``model`` (``None`` when it abstained).
        The low tier answers with the server's local model; mid / high need an LLM configured on it."""
        return self._send(_core.answer(query, cube_ids, top_k=top_k, budget=budget, use_cache=use_cache,
                                          timeout=timeout, **extra))

    def generate(
        self,
        prompt: str,
        *,
        cube_id: Id | None = None,
        activation_id: Id | None = None,
        max_new_tokens: int = 32,
        use_activation: bool = True,
        chat: bool = False,
        temperature: float = 0.0,
        seed: int | None = None,
        adapter_ids: Sequence[Id] | None = None,
        timeout: TimeoutLike | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> GenerateResponse:
        """Generate with the server's model, reusing the longest stored activation that prefixes the prompt
        (only ``cube_id``'s when given; ``activation_id`` prepends that activation's text). ``timeout``
        defaults to 300 s, as the first call may load the model."""
        return self._send(
            _core.generate(
                prompt,
                cube_id=cube_id,
                activation_id=activation_id,
                max_new_tokens=max_new_tokens,
                use_activation=use_activation,
                chat=chat,
                temperature=temperature,
                seed=seed,
                adapter_ids=adapter_ids,
                timeout=timeout,
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
        headers = _core.request_headers(self._config, spec, self.last_seq if self._read_your_writes else 0)
        policy = self._config.retry
        retryable = spec.retry and is_retryable_request(spec.method, headers)
        attempts = 1 + (policy.max_retries if retryable else 0)
        for attempt in range(attempts):
            request = self._http.build_request(
                spec.method,
                spec.path,
                params=spec.params,
                json=spec.json,
                files=spec.files,
                data=spec.data,
                content=upload.chunks() if upload is not None else None,
                headers=headers,
                timeout=spec.timeout if spec.timeout is not None else httpx.USE_CLIENT_DEFAULT,
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
                self.last_seq = _core.later_seq(response, self.last_seq)
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

    def quotas(self, tenant_id: Id) -> TenantQuotas:
        """A tenant's quota limits and current usage (an admin key, or the tenant's own unscoped admin key)."""
        return self._client._send(_core.tenant_quotas(tenant_id))

    def set_quotas(self, tenant_id: Id, **limits: int | None) -> TenantQuotas:
        """Replace a tenant's quota overrides (an admin key): ``memories``, ``cubes``, ``snapshots``,
        ``adapter_bytes``, ``activation_bytes``; one left out (or None) goes back to the server's default."""
        return self._client._send(_core.set_tenant_quotas(tenant_id, limits))


class Keys(_Resource):
    """Admin: API keys."""

    def create(
        self,
        tenant_id: Id,
        name: str | None = None,
        *,
        cube_ids: Sequence[Id] | None = None,
        permission: KeyPermission | None = None,
        idempotency_key: str | None = None,
    ) -> KeyCreated:
        """Create another key for a tenant (shown only once). With ``cube_ids`` it sees only those cubes, with
        ``permission`` read < write < admin: how a tenant shares a cube with another agent. An admin key, or
        the tenant's own unscoped admin key, may create keys."""
        return self._client._send(
            _core.create_key(
                tenant_id, name, cube_ids=cube_ids, permission=permission, idempotency_key=idempotency_key
            )
        )

    def list(self, tenant_id: Id) -> builtins.list[KeyInfo]:
        """A tenant's keys, revoked ones included, oldest first (an admin key, or the tenant's own unscoped
        admin key); the keys themselves are never shown again."""
        return self._client._send(_core.list_keys(tenant_id))

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

    def update(
        self, cube_id: Id, *, name: str | None = None, forget_policy: ForgetPolicy | None = None
    ) -> Cube:
        """Change a cube's settings (an admin key for the cube): ``name`` renames it (a name another live cube
        has is a :class:`ConflictError`); ``forget_policy`` ``purge`` makes forget requests destroy what they
        match instead of archiving it."""
        return self._client._send(_core.update_cube(cube_id, name=name, forget_policy=forget_policy))

    def delete(self, cube_id: Id) -> None:
        self._client._send(_core.delete_cube(cube_id))

    def export(self, cube_id: Id, path_or_file: ExportTarget) -> int:
        """Stream the cube's JSON Lines export into a path or binary file; return the bytes written.

        A path is written atomically (temporary file, then rename) so a failed export leaves no
        partial file behind. Nothing is created when the server refuses the export.
        """
        return self._download(_core.export_cube(cube_id), path_or_file)

    def _download(self, request: _core.RequestSpec, path_or_file: ExportTarget) -> int:
        """Stream a response body into a path (atomically) or binary file; return the bytes written."""
        response = self._client._request(request, stream=True)
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

    def archive(self, cube_id: Id, path_or_file: ExportTarget) -> int:
        """Stream the cube's portable archive (a tar: memories with versions, graph, caches, adapters) into a
        path or binary file; return the bytes written. A path is written atomically."""
        return self._download(_core.archive_cube(cube_id), path_or_file)

    def import_archive(
        self, path_or_file: UploadSource, *, name: str | None = None, idempotency_key: str | None = None
    ) -> ArchiveImportResult:
        """A new cube from an archive (path or file object), named ``name`` or as the archived cube was.
        A corrupted or altered archive is refused whole (422) and nothing is written."""
        upload = Upload(path_or_file)
        call = _core.import_archive(
            name=name, size=upload.size, rewindable=upload.rewindable, idempotency_key=idempotency_key
        )
        response = self._client._request(call.request, upload=upload)
        return _core.decode(call, response)

    def fork(
        self,
        cube_id: Id,
        *,
        name: str | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> ArchiveImportResult:
        """A new cube with a copy of everything in this one (default name ``<name>-fork-<6 hex>``)."""
        return self._client._send(
            _core.fork_cube(cube_id, name=name, description=description, idempotency_key=idempotency_key)
        )

    def merge(self, cube_id: Id, from_cube_id: Id, *, idempotency_key: str | None = None) -> MergeResult:
        """Write the other cube's active memories into this one through admission (duplicates are merged,
        not doubled); returns the counts."""
        return self._client._send(_core.merge_cube(cube_id, from_cube_id, idempotency_key=idempotency_key))

    def fuse(self, cube_id: Id, into: Literal["activation", "parametric"], **options: Any) -> FuseResult:
        """Queue the job that fuses the cube's plaintext into a KV cache (``max_tokens``) or a distilled
        adapter (``memory_filter``, ``steps``, ``rank``, ``learning_rate``); see ``jobs.wait``."""
        return self._client._send(_core.fuse_cube(cube_id, into, **options))

    def graph(
        self,
        cube_id: Id,
        *,
        types: str | Sequence[str] | None = None,
        limit: int = 200,
        cursor: str | None = None,
    ) -> GraphPage:
        """One page of the cube's edges (only ``types`` when given; server maximum 1000 a page) and the
        nodes they touch; pass ``next_cursor`` back as ``cursor``, or use :meth:`iter_graph`."""
        return self._client._send(_core.graph_page(cube_id, types=types, limit=limit, cursor=cursor))

    def iter_graph(
        self, cube_id: Id, *, types: str | Sequence[str] | None = None, page_size: int = 200
    ) -> Iterator[GraphPage]:
        """Iterate over the cube's whole graph, one :class:`GraphPage` at a time, following ``next_cursor``.

        Each page carries the nodes its edges touch, so a node can appear on several pages. Arguments are
        checked now; the first page is fetched on the first ``next()``.
        """
        _core.check_page_size(page_size, "page_size")
        return self._iterate_graph(cube_id, types=types, page_size=page_size)

    def _iterate_graph(
        self, cube_id: Id, *, types: str | Sequence[str] | None, page_size: int
    ) -> Iterator[GraphPage]:
        cursor: str | None = None
        while True:
            page = self._client._send(_core.graph_page(cube_id, types=types, limit=page_size, cursor=cursor))
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def entities(
        self, cube_id: Id, *, q: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> EntityList:
        """One page of the cube's named entities, optionally those whose name contains ``q``."""
        return self._client._send(_core.entities_page(cube_id, q=q, limit=limit, cursor=cursor))

    def consolidate(
        self, cube_id: Id, *, forget: bool | None = None, summaries: bool | None = None
    ) -> Job:
        """Queue a consolidation job (dedup, summaries when ``summaries``, then the forgetting policy when
        ``forget``; unset options take the server's defaults). Returns the job; see ``jobs.wait``."""
        return self._client._send(_core.consolidate(cube_id, forget=forget, summaries=summaries))

    def forget(self, cube_id: Id) -> Job:
        """Queue a job applying the cube's forgetting policy (archives memories; restorable)."""
        return self._client._send(_core.forget(cube_id))

    def get_policy(self, cube_id: Id) -> Policy:
        """The cube's forgetting policy (the server's default until one is set)."""
        return self._client._send(_core.get_policy(cube_id))

    def preview_policy(self, cube_id: Id, *, limit: int = 100) -> PolicyPreview:
        """What applying the forgetting policy now would archive, with retention scores; changes nothing."""
        return self._client._send(_core.preview_policy(cube_id, limit))

    def set_policy(self, cube_id: Id, **fields: Any) -> Policy:
        """Replace the cube's forgetting policy (``enabled``, ``threshold``, ``max_active``, ``ttl_days``,
        ``half_life_days``, ``min_age_hours``); fields not given take the server's defaults."""
        return self._client._send(_core.set_policy(cube_id, **fields))

    def purge(
        self,
        cube_id: Id,
        *,
        statuses: Sequence[str] | None = None,
        older_than_days: float | None = None,
    ) -> PurgeResult:
        """Destroy the cube's memories with these statuses (server default: archived and deleted), only
        those last changed more than ``older_than_days`` ago when given. Cannot be undone."""
        return self._client._send(
            _core.purge(cube_id, statuses=statuses, older_than_days=older_than_days)
        )

    def wait_enriched(self, cube_id: Id, *, timeout: float = 120, poll: float = 0.2) -> Cube:
        """Poll the cube every ``poll`` seconds until no memory awaits enrichment; return it then.

        Writes are acknowledged before enrichment (fine-search indexes, entities, graph edges) runs, so a
        ``mode="fine"`` search, ``graph`` or ``entities`` right after a write may miss it. Raises
        :class:`APITimeoutError` (code ``enrichment_timeout``) when memories are still pending after
        ``timeout`` seconds.
        """
        _core.check_wait_arguments(timeout, poll)
        deadline = time.monotonic() + timeout
        while True:
            cube = self.get(cube_id)
            if cube.enrichment_pending == 0:
                return cube
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _core.enrichment_timeout(cube, timeout)
            self._client._sleep(min(poll, remaining))


class Snapshots(_Resource):
    """Snapshots of a cube's memories and graph; a restore is undone by restoring its pre-restore snapshot."""

    def create(self, cube_id: Id, *, label: str | None = None, idempotency_key: str | None = None) -> Snapshot:
        return self._client._send(_core.create_snapshot(cube_id, label=label, idempotency_key=idempotency_key))

    def list(self, cube_id: Id) -> builtins.list[Snapshot]:
        """Newest first."""
        return self._client._send(_core.list_snapshots(cube_id))

    def delete(self, cube_id: Id, snapshot_id: Id) -> None:
        """Destroy a snapshot, freeing its place in the tenant's snapshot quota (a write key)."""
        self._client._send(_core.delete_snapshot(cube_id, snapshot_id))

    def restore(self, cube_id: Id, snapshot_id: Id) -> RestoreResult:
        """Put the snapshot's state back as new versions; later memories are archived, nothing is destroyed."""
        return self._client._send(_core.restore_snapshot(cube_id, snapshot_id))


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
        """Add one memory. ``occurred_at`` (event time) must be timezone-aware. The answer's ``admission``
        says whether it was admitted or merged into a duplicate (then archived, with ``merged_into``);
        raises :class:`MemcubedError` (code ``admission_rejected``) when write admission stored nothing."""
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
        result = self.add_many_detailed(cube_id, [memory], idempotency_key=idempotency_key)
        if not result.memories:
            raise _core.admission_rejected(result)
        return result.memories[0]

    def add_many(
        self, cube_id: Id, memories: Sequence[MemoryLike], *, idempotency_key: str | None = None
    ) -> builtins.list[Memory]:
        """Add a batch in one request; the server stores all or none. Items write admission rejects
        store nothing, so the list can be shorter than the input: see :meth:`add_many_detailed`."""
        return self._client._send(_core.add_memories(cube_id, memories, idempotency_key=idempotency_key))

    def add_many_detailed(
        self, cube_id: Id, memories: Sequence[MemoryLike], *, idempotency_key: str | None = None
    ) -> WriteResult:
        """``add_many``, returning also write admission's decision for every input item, in input order
        (``admitted``, ``merged`` into a duplicate, or ``rejected``: nothing stored for that item)."""
        return self._client._send(
            _core.add_memories_detailed(cube_id, memories, idempotency_key=idempotency_key)
        )

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
        speaker: str | None = None,
        order: MemoryOrder | None = None,
        page_size: int = 100,
    ) -> Iterator[Memory]:
        """Iterate over every matching memory, fetching ``page_size`` (server maximum 500) at a time.

        ``occurred_after``/``occurred_before`` bound the event time; ``speaker`` matches a message's speaker;
        ``order="event"`` sorts by event time (occurred_at, else created_at) instead of write order.
        Arguments are checked now; the first page is fetched on the first ``next()``.
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
            speaker=speaker,
            order=order,
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

    def delete(self, memory_id: Id, *, hard: bool = False) -> Memory:
        """Soft delete: the memory stays, with status ``deleted``, and can be restored. ``hard=True``
        destroys it and its versions (audited); it is then gone (``get`` raises :class:`NotFoundError`)."""
        return self._client._send(_core.delete_memory(memory_id, hard=hard))

    def feedback(self, memory_id: Id, signal: FeedbackSignal) -> Memory:
        """Record a feedback signal (``useful``, ``not_useful`` or ``wrong``); it weighs on retention and
        consolidation. Returns the memory with its updated ``feedback`` counts. Never retried."""
        return self._client._send(_core.memory_feedback(memory_id, signal))

    def restore(self, memory_id: Id, *, idempotency_key: str | None = None) -> Memory:
        return self._client._send(_core.restore_memory(memory_id, idempotency_key=idempotency_key))

    def history(self, memory_id: Id) -> MemoryHistory:
        return self._client._send(_core.memory_history(memory_id))

    def links(self, memory_id: Id) -> MemoryLinks:
        """The memory's entity names and its graph edges, each with the memory at the other end."""
        return self._client._send(_core.memory_links(memory_id))


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
        budget: BudgetLike | None = None,
        idempotency_key: str | None = None,
    ) -> builtins.list[Memory]:
        """``budget`` picks the extraction tier: ``low`` raw turns, ``mid`` (and ``auto``) adds rule-based
        facts and entities, ``high`` LLM-extracted facts (needs an LLM on the server)."""
        return self._client._send(
            _core.add_messages(
                cube_id,
                session_id,
                messages,
                user_id=user_id,
                agent_id=agent_id,
                budget=budget,
                idempotency_key=idempotency_key,
            )
        )

    def add_detailed(
        self,
        cube_id: Id,
        session_id: str,
        messages: Sequence[MessageLike],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        budget: BudgetLike | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """``add``, returning also what a forget request among the messages did: ``forgotten`` (memory ids)
        and ``forget_request_id`` (see :class:`ForgetRequests`)."""
        return self._client._send(
            _core.add_messages_detailed(
                cube_id,
                session_id,
                messages,
                user_id=user_id,
                agent_id=agent_id,
                budget=budget,
                idempotency_key=idempotency_key,
            )
        )


class ForgetRequests(_Resource):
    """Forget requests users made in messages ("forget my address"): list a cube's, revert one."""

    def list(self, cube_id: Id, *, limit: int = 50) -> builtins.list[ForgetRequest]:
        return self._client._send(_core.list_forget_requests(cube_id, limit))

    def revert(self, request_id: Id) -> ForgetRequest:
        """Restore the memories a request archived, exactly as they were; a purged request is a ConflictError."""
        return self._client._send(_core.revert_forget_request(request_id))


class Activations(_Resource):
    """Activation memory: KV caches of rendered memory prefixes that ``generate`` reuses."""

    def create(
        self,
        cube_id: Id,
        *,
        text: str | None = None,
        memory_ids: Sequence[Id] | None = None,
        query: str | None = None,
        top_k: int | None = None,
        timeout: TimeoutLike | None = None,
        idempotency_key: str | None = None,
    ) -> Activation:
        """Store the KV cache of exactly one source: raw ``text``, the cube's ``memory_ids``, or the
        ``top_k`` memories best matching ``query``. ``timeout`` defaults to 300 s (the first call may load
        the model)."""
        return self._client._send(
            _core.create_activation(
                cube_id,
                text=text,
                memory_ids=memory_ids,
                query=query,
                top_k=top_k,
                timeout=timeout,
                idempotency_key=idempotency_key,
            )
        )

    def list(self, cube_id: Id) -> builtins.list[Activation]:
        return self._client._send(_core.list_activations(cube_id))

    def stats(self) -> ActivationStats:
        """The caller's activations per tier and the server's cache counters."""
        return self._client._send(_core.activation_stats())

    def delete(self, activation_id: Id) -> Activation:
        return self._client._send(_core.delete_activation(activation_id))



class Adapters(_Resource):
    """Parametric memory: LoRA adapters of the server's model, uploaded or distilled from a cube's memories,
    attached at ``generate(adapter_ids=...)``."""

    def upload(
        self,
        cube_id: Id,
        config: Mapping[str, Any] | bytes | str | os.PathLike[str],
        weights: bytes | str | os.PathLike[str],
        *,
        name: str = "adapter",
        idempotency_key: str | None = None,
    ) -> Adapter:
        """Upload a peft adapter (config mapping/bytes/path, safetensors bytes/path); an existing ``name``
        gets the next version."""
        return self._client._send(
            _core.upload_adapter(cube_id, config, weights, name=name, idempotency_key=idempotency_key)
        )

    def list(self, cube_id: Id, *, include_deleted: bool = False) -> builtins.list[Adapter]:
        return self._client._send(_core.list_adapters(cube_id, include_deleted=include_deleted))

    def get(self, adapter_id: Id) -> Adapter:
        return self._client._send(_core.get_adapter(adapter_id))

    def delete(self, adapter_id: Id) -> Adapter:
        """Soft delete: ``restore`` brings it back."""
        return self._client._send(_core.delete_adapter(adapter_id))

    def restore(self, adapter_id: Id) -> Adapter:
        return self._client._send(_core.restore_adapter(adapter_id))

    def distill(
        self,
        cube_id: Id,
        *,
        name: str | None = None,
        memory_filter: FiltersLike | None = None,
        steps: int | None = None,
        rank: int | None = None,
        learning_rate: float | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a distillation job (see ``jobs.wait``); its result names the new adapter and its metrics."""
        return self._client._send(
            _core.distill_adapter(
                cube_id,
                name=name,
                memory_filter=memory_filter,
                steps=steps,
                rank=rank,
                learning_rate=learning_rate,
                idempotency_key=idempotency_key,
            )
        )

class Jobs(_Resource):
    """Background jobs of the caller's cubes (``cubes.consolidate``, ``cubes.forget``)."""

    def list(
        self,
        *,
        cube_id: Id | None = None,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 50,
    ) -> builtins.list[Job]:
        """The most recent jobs (server maximum 500), optionally of one cube, status or kind."""
        return self._client._send(_core.list_jobs(cube_id=cube_id, status=status, kind=kind, limit=limit))

    def get(self, job_id: Id) -> Job:
        return self._client._send(_core.get_job(job_id))

    def cancel(self, job_id: Id) -> Job:
        """Cancel a queued job. Raises :class:`ConflictError` when it is no longer queued."""
        return self._client._send(_core.cancel_job(job_id))

    def wait(self, job_id: Id, *, timeout: float = 120, poll: float = 0.2) -> Job:
        """Poll the job every ``poll`` seconds until it is ``done``, ``failed`` or ``cancelled``; return it
        then (a failed job is returned, not raised: check ``status`` and ``error``). Raises
        :class:`APITimeoutError` (code ``job_timeout``) when it is unfinished after ``timeout`` seconds."""
        _core.check_wait_arguments(timeout, poll)
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.status in _core.JOB_FINISHED:
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _core.job_timeout(job, timeout)
            self._client._sleep(min(poll, remaining))


class RoutingResource(_Resource):
    """Budget-tier routing counters."""

    def stats(self) -> RoutingStats:
        """This server process's routing counters for the caller's tenant: requests, cache hits, tiers
        chosen per module and their mean measured ms."""
        return self._client._send(_core.routing_stats())
