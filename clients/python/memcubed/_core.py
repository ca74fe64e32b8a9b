"""Request building and response parsing, shared by :class:`Client` and :class:`AsyncClient`.

Nothing here does I/O: each operation is a function that returns a :class:`Call` (what to send and how
to read the answer), so the two clients only differ in how they send it and the behaviour of every route
is written once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
import pydantic

from . import _errors
from ._models import (
    Activation,
    ActivationStats,
    Adapter,
    Admission,
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
    MemoryIn,
    MemoryLinks,
    MemoryPage,
    MergeResult,
    Message,
    Policy,
    PolicyPreview,
    PurgeResult,
    RequestDatetime,
    RestoreResult,
    RoutingStats,
    SearchFilters,
    SearchResponse,
    Snapshot,
    Tenant,
    TenantCreated,
    TenantQuotas,
    WhoAmI,
    WriteResult,
    _Request,
)
from ._retry import RetryPolicy, parse_retry_after
from ._version import __version__

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)
_AwareDatetime: pydantic.TypeAdapter[datetime] = pydantic.TypeAdapter(RequestDatetime)

DEFAULT_BASE_URL = "http://127.0.0.1:8080"  # the `memcubed serve` default
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Routes that run the server's language model: the first call may load and convert it (about a minute).
MODEL_TIMEOUT = httpx.Timeout(300.0, connect=5.0)
NDJSON = "application/x-ndjson"
TAR = "application/x-tar"
# Import, fork and restore index every memory they write before answering (about 80 s per 1,000 memories
# on a busy 2-core machine): far longer than an ordinary request.
LIFECYCLE_TIMEOUT = httpx.Timeout(900.0, connect=5.0)

Id = str | uuid.UUID
MemoryLike = MemoryIn | Mapping[str, Any]
MessageLike = Message | Mapping[str, Any]
FiltersLike = SearchFilters | Mapping[str, Any]
SearchMode = Literal["fast", "fine"]
FeedbackSignal = Literal["useful", "not_useful", "wrong"]
KeyPermission = Literal["read", "write", "admin"]
MemoryOrder = Literal["created", "event"]
ForgetPolicy = Literal["archive", "purge"]
TimeoutLike = float | httpx.Timeout


# --- configuration -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs to build requests; resolved once at construction."""

    base_url: str
    api_key: str | None
    timeout: httpx.Timeout
    retry: RetryPolicy
    idempotency_keys: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)


def resolve_config(
    base_url: str | None,
    api_key: str | None,
    *,
    timeout: float | httpx.Timeout | None,
    max_retries: int | None,
    retry_policy: RetryPolicy | None,
    idempotency_keys: bool,
    headers: Mapping[str, str] | None,
    environ: Mapping[str, str] | None = None,
) -> ClientConfig:
    """Arguments win over ``MEMCUBED_URL`` / ``MEMCUBED_API_KEY``, which win over the local default."""
    env = os.environ if environ is None else environ
    url = base_url or env.get("MEMCUBED_URL") or DEFAULT_BASE_URL
    key = api_key if api_key is not None else (env.get("MEMCUBED_API_KEY") or None)
    if timeout is None:
        resolved_timeout = DEFAULT_TIMEOUT
    elif isinstance(timeout, httpx.Timeout):
        resolved_timeout = timeout
    else:
        resolved_timeout = httpx.Timeout(timeout)
    policy = retry_policy or RetryPolicy()
    if max_retries is not None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        policy = dataclasses.replace(policy, max_retries=max_retries)
    return ClientConfig(
        base_url=url.rstrip("/"),
        api_key=key,
        timeout=resolved_timeout,
        retry=policy,
        idempotency_keys=idempotency_keys,
        headers=dict(headers or {}),
    )


def default_headers(config: ClientConfig) -> dict[str, str]:
    """Headers sent on every request of a client."""
    headers = {"User-Agent": f"memcubed-python/{__version__}", "Accept": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    headers.update(config.headers)
    return headers


# --- request description -----------------------------------------------------------------------------


@dataclass
class RequestSpec:
    """One HTTP request, relative to the base URL. ``retry=False`` forbids retries whatever the method;
    ``timeout`` replaces the client's for this request only. A list in ``params`` repeats the parameter."""

    method: str
    path: str
    params: dict[str, str | int | list[str]] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    retry: bool = True
    timeout: httpx.Timeout | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    """Multipart file parts (name -> (filename, bytes, content type)); ``data`` are its plain form fields."""
    data: dict[str, str] | None = None


@dataclass
class Call(Generic[T]):
    """A request and the function that turns its decoded JSON body (``None`` when empty) into ``T``."""

    request: RequestSpec
    parse: Callable[[Any], T]


SEQ_HEADER = "X-Memcubed-Seq"
MIN_SEQ_HEADER = "X-Memcubed-Min-Seq"


def later_seq(response: httpx.Response, seen: int) -> int:
    """The highest change number seen: a write's ``X-Memcubed-Seq`` raises it."""
    value = response.headers.get(SEQ_HEADER, "")
    return max(seen, int(value)) if value.isdigit() else seen


def request_headers(config: ClientConfig, spec: RequestSpec, min_seq: int = 0) -> dict[str, str]:
    """Per-call headers. Generated once per call, so every retry of a POST carries the same key. ``min_seq``:
    the process answering must have applied that change (read-your-writes behind a load balancer)."""
    headers = dict(spec.headers)
    if min_seq:
        headers[MIN_SEQ_HEADER] = str(min_seq)
    if spec.method.upper() == "POST":
        key = spec.idempotency_key
        if key is None and config.idempotency_keys:
            key = str(uuid.uuid4())
        if key is not None:
            headers["Idempotency-Key"] = key
    return headers


def _seg(value: Id) -> str:
    """A path segment; quoted so an id can never change the route."""
    text = str(value)
    if text in ("", ".", ".."):
        raise ValueError(f"invalid id: {text!r}")
    return quote(text, safe="")


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _dump(model: pydantic.BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)


def _coerce(model: type[_Request], value: _Request | Mapping[str, Any]) -> _Request:
    if isinstance(value, model):
        return value
    if isinstance(value, pydantic.BaseModel):
        return model.model_validate(value.model_dump())
    if isinstance(value, Mapping):
        return model.model_validate(dict(value))
    raise TypeError(f"expected {model.__name__} or a mapping, got {type(value).__name__}")


def _parse(model: type[M], data: Any) -> M:
    return model.model_validate(data)


# Built once: a TypeAdapter compiles its schema (about 0.13 ms), too much to repeat on every request.
_JSON_DICT = pydantic.TypeAdapter(dict[str, Any])


def _json_extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """Extra body keys, JSON-ready (datetimes, UUIDs, models), for parameters the SDK does not name yet."""
    dumped: dict[str, Any] = _JSON_DICT.dump_python(dict(extra), mode="json")
    return dumped


def _timeout(value: TimeoutLike | None, default: httpx.Timeout) -> httpx.Timeout:
    if value is None:
        return default
    return value if isinstance(value, httpx.Timeout) else httpx.Timeout(value)


# --- response handling -------------------------------------------------------------------------------


def request_id_of(response: httpx.Response) -> str | None:
    return response.headers.get("x-request-id")


def error_from_response(response: httpx.Response) -> _errors.APIStatusError:
    """Build the exception for an error response from its envelope ``{"error": {code, message, details}}``.

    Bodies of another shape (a proxy's HTML page, FastAPI's ``{"detail": ...}``) still give a useful
    error: the text becomes the message and the parsed body, if any, the details.
    """
    status = response.status_code
    code: str | None = None
    message: str | None = None
    details: dict[str, Any] = {}
    try:
        raw = response.content
    except httpx.ResponseNotRead:  # the body was lost while reading a streamed error
        raw = b""
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err["code"]) if err.get("code") is not None else None
        message = str(err["message"]) if err.get("message") is not None else None
        if isinstance(err.get("details"), dict):
            details = err["details"]
        elif err.get("details") is not None:
            details = {"details": err["details"]}
    elif isinstance(body, dict):
        details = body
        if isinstance(body.get("detail"), str):
            message = body["detail"]
    if message is None:
        text = raw.decode(response.encoding or "utf-8", errors="replace").strip()
        message = text[:500] if text else (response.reason_phrase or f"HTTP {status}")
    cls = _errors.error_class_for(status, code)
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code or f"http_{status}",
        "details": details,
        "request_id": request_id_of(response),
    }
    if cls is _errors.RateLimitError:
        return _errors.RateLimitError(
            message, retry_after=parse_retry_after(response.headers.get("retry-after")), **kwargs
        )
    return cls(message, **kwargs)


def connection_error(exc: httpx.RequestError, request: httpx.Request | None = None) -> _errors.MemcubedError:
    """Map an httpx failure without a usable response to the SDK's timeout or connection error."""
    target = f"{request.method} {request.url}" if request is not None else "request"
    if isinstance(exc, httpx.TimeoutException):
        return _errors.APITimeoutError(f"{target} timed out: {exc}")
    return _errors.APIConnectionError(f"{target} failed: {type(exc).__name__}: {exc}")


def decode(call: Call[T], response: httpx.Response) -> T:
    """Parse a successful, fully read response. A body that does not match the model is reported as a
    :class:`MemcubedError` carrying the request id, never as a bare pydantic error."""
    data: Any = None
    if response.status_code != 204 and response.content:
        try:
            data = response.json()
        except ValueError as exc:
            raise _errors.MemcubedError(
                f"response is not JSON: {response.text[:200]!r}",
                status=response.status_code,
                code="invalid_response",
                request_id=request_id_of(response),
            ) from exc
    try:
        return call.parse(data)
    except (pydantic.ValidationError, KeyError, TypeError) as exc:
        raise _errors.MemcubedError(
            f"unexpected response shape: {exc}",
            status=response.status_code,
            code="invalid_response",
            request_id=request_id_of(response),
        ) from exc


# --- operations --------------------------------------------------------------------------------------
# One function per route. ``_routes.ROUTES`` lists the same routes against the SDK method names.


def health() -> Call[dict[str, Any]]:
    return Call(RequestSpec("GET", "/healthz"), lambda data: dict(data or {}))


def whoami() -> Call[WhoAmI]:
    return Call(RequestSpec("GET", "/v1/whoami"), lambda data: _parse(WhoAmI, data))


def ready() -> Call[dict[str, Any]]:
    # A readiness probe wants the current answer, not one after retries.
    return Call(RequestSpec("GET", "/readyz", retry=False), lambda data: dict(data or {}))


def create_tenant(name: str, *, idempotency_key: str | None = None) -> Call[TenantCreated]:
    return Call(
        RequestSpec("POST", "/v1/tenants", json={"name": name}, idempotency_key=idempotency_key),
        lambda data: _parse(TenantCreated, data),
    )


def list_tenants() -> Call[list[Tenant]]:
    return Call(
        RequestSpec("GET", "/v1/tenants"),
        lambda data: [Tenant.model_validate(t) for t in data["tenants"]],
    )


def tenant_quotas(tenant_id: Id) -> Call[TenantQuotas]:
    return Call(RequestSpec("GET", f"/v1/tenants/{_seg(tenant_id)}/quotas"), lambda data: _parse(TenantQuotas, data))


def set_tenant_quotas(tenant_id: Id, limits: dict[str, int | None]) -> Call[TenantQuotas]:
    return Call(
        RequestSpec("PUT", f"/v1/tenants/{_seg(tenant_id)}/quotas", json=_drop_none(limits)),
        lambda data: _parse(TenantQuotas, data),
    )


def create_key(
    tenant_id: Id,
    name: str | None = None,
    *,
    cube_ids: Sequence[Id] | None = None,
    permission: KeyPermission | None = None,
    idempotency_key: str | None = None,
) -> Call[KeyCreated]:
    cubes = None if cube_ids is None else [str(c) for c in cube_ids]
    return Call(
        RequestSpec(
            "POST",
            f"/v1/tenants/{_seg(tenant_id)}/keys",
            json=_drop_none({"name": name, "cube_ids": cubes, "permission": permission}),
            idempotency_key=idempotency_key,
        ),
        lambda data: _parse(KeyCreated, data),
    )


def list_keys(tenant_id: Id) -> Call[list[KeyInfo]]:
    return Call(
        RequestSpec("GET", f"/v1/tenants/{_seg(tenant_id)}/keys"),
        lambda data: [_parse(KeyInfo, k) for k in data["keys"]],
    )


def revoke_key(key_id: Id) -> Call[KeyRevoked]:
    return Call(RequestSpec("DELETE", f"/v1/keys/{_seg(key_id)}"), lambda data: _parse(KeyRevoked, data))


def create_cube(
    name: str,
    description: str | None = None,
    owner_id: str | None = None,
    *,
    idempotency_key: str | None = None,
) -> Call[Cube]:
    body = _drop_none({"name": name, "description": description, "owner_id": owner_id})
    return Call(
        RequestSpec("POST", "/v1/cubes", json=body, idempotency_key=idempotency_key),
        lambda data: _parse(Cube, data),
    )


def list_cubes() -> Call[list[Cube]]:
    return Call(RequestSpec("GET", "/v1/cubes"), lambda data: [Cube.model_validate(c) for c in data["cubes"]])


def get_cube(cube_id: Id) -> Call[Cube]:
    return Call(RequestSpec("GET", f"/v1/cubes/{_seg(cube_id)}"), lambda data: _parse(Cube, data))


def update_cube(cube_id: Id, *, name: str | None = None, forget_policy: ForgetPolicy | None = None) -> Call[Cube]:
    body = _drop_none({"name": name, "forget_policy": forget_policy})
    if not body:
        raise ValueError("update needs at least one field to change")
    return Call(RequestSpec("PATCH", f"/v1/cubes/{_seg(cube_id)}", json=body), lambda data: _parse(Cube, data))


def list_forget_requests(cube_id: Id, limit: int = 50) -> Call[list[ForgetRequest]]:
    return Call(
        RequestSpec("GET", f"/v1/cubes/{_seg(cube_id)}/forget-requests", params={"limit": limit}),
        lambda data: [_parse(ForgetRequest, r) for r in data["forget_requests"]],
    )


def revert_forget_request(request_id: Id) -> Call[ForgetRequest]:
    return Call(
        RequestSpec("POST", f"/v1/forget-requests/{_seg(request_id)}/revert"),
        lambda data: _parse(ForgetRequest, data),
    )


def delete_cube(cube_id: Id) -> Call[None]:
    return Call(RequestSpec("DELETE", f"/v1/cubes/{_seg(cube_id)}"), lambda data: None)


def export_cube(cube_id: Id) -> RequestSpec:
    """Streamed by the client straight into the target file, so the export is never held in memory."""
    return RequestSpec("GET", f"/v1/cubes/{_seg(cube_id)}/export", headers={"Accept": NDJSON})


def import_cube(
    cube_id: Id, *, size: int | None, rewindable: bool, idempotency_key: str | None = None
) -> Call[ImportResult]:
    """The body is streamed by the client; a known size is sent as ``Content-Length`` (not chunked)
    so the server can refuse an oversized upload before reading it. A body that cannot be rewound
    cannot be sent twice, so it is never retried."""
    headers = {"Content-Type": NDJSON}
    if size is not None:
        headers["Content-Length"] = str(size)
    return Call(
        RequestSpec(
            "POST",
            f"/v1/cubes/{_seg(cube_id)}/import",
            headers=headers,
            idempotency_key=idempotency_key,
            retry=rewindable,
        ),
        lambda data: _parse(ImportResult, data),
    )


def archive_cube(cube_id: Id) -> RequestSpec:
    """Streamed by the client straight into the target file, like an export."""
    return RequestSpec("GET", f"/v1/cubes/{_seg(cube_id)}/archive", headers={"Accept": TAR})


def import_archive(
    *, name: str | None, size: int | None, rewindable: bool, idempotency_key: str | None = None
) -> Call[ArchiveImportResult]:
    """The tar is streamed as the raw body; see ``import_cube`` for sizes and retries."""
    headers = {"Content-Type": TAR}
    if size is not None:
        headers["Content-Length"] = str(size)
    return Call(
        RequestSpec(
            "POST",
            "/v1/cubes/import-archive",
            params=_drop_none({"name": name}) or None,
            headers=headers,
            idempotency_key=idempotency_key,
            retry=rewindable,
            timeout=LIFECYCLE_TIMEOUT,
        ),
        lambda data: _parse(ArchiveImportResult, data),
    )


def fork_cube(
    cube_id: Id, *, name: str | None = None, description: str | None = None, idempotency_key: str | None = None
) -> Call[ArchiveImportResult]:
    return Call(
        RequestSpec(
            "POST",
            f"/v1/cubes/{_seg(cube_id)}/fork",
            json=_drop_none({"name": name, "description": description}),
            idempotency_key=idempotency_key,
            timeout=LIFECYCLE_TIMEOUT,
        ),
        lambda data: _parse(ArchiveImportResult, data),
    )


def create_snapshot(cube_id: Id, *, label: str | None = None, idempotency_key: str | None = None) -> Call[Snapshot]:
    return Call(
        RequestSpec(
            "POST",
            f"/v1/cubes/{_seg(cube_id)}/snapshots",
            json=_drop_none({"label": label}),
            idempotency_key=idempotency_key,
        ),
        lambda data: _parse(Snapshot, data),
    )


def list_snapshots(cube_id: Id) -> Call[list[Snapshot]]:
    return Call(
        RequestSpec("GET", f"/v1/cubes/{_seg(cube_id)}/snapshots"),
        lambda data: [Snapshot.model_validate(s) for s in data["snapshots"]],
    )


def delete_snapshot(cube_id: Id, snapshot_id: Id) -> Call[None]:
    return Call(RequestSpec("DELETE", f"/v1/cubes/{_seg(cube_id)}/snapshots/{_seg(snapshot_id)}"), lambda data: None)


def restore_snapshot(cube_id: Id, snapshot_id: Id) -> Call[RestoreResult]:
    """Not retried: a second restore would snapshot and restore again (harmless, but not what was asked)."""
    return Call(
        RequestSpec(
            "POST",
            f"/v1/cubes/{_seg(cube_id)}/snapshots/{_seg(snapshot_id)}/restore",
            retry=False,
            timeout=LIFECYCLE_TIMEOUT,
        ),
        lambda data: _parse(RestoreResult, data),
    )


def merge_cube(cube_id: Id, from_cube_id: Id, *, idempotency_key: str | None = None) -> Call[MergeResult]:
    return Call(
        RequestSpec(
            "POST",
            f"/v1/cubes/{_seg(cube_id)}/merge",
            json={"from_cube_id": str(from_cube_id)},
            idempotency_key=idempotency_key,
        ),
        lambda data: _parse(MergeResult, data),
    )


def fuse_cube(cube_id: Id, into: Literal["activation", "parametric"], **options: Any) -> Call[FuseResult]:
    """A retry cannot queue a second job: the server returns the same kind's job still queued."""
    return Call(
        RequestSpec("POST", f"/v1/cubes/{_seg(cube_id)}/fuse", json={"into": into, **_drop_none(options)}),
        lambda data: _parse(FuseResult, data),
    )


def memory_in(content: str, **fields: Any) -> MemoryIn:
    """A :class:`MemoryIn` from ``memories.add``'s keywords; ``None`` means "server default"."""
    return MemoryIn.model_validate({"content": content, **_drop_none(fields)})


def add_memories(
    cube_id: Id, memories: Sequence[MemoryLike], *, idempotency_key: str | None = None
) -> Call[list[Memory]]:
    if isinstance(memories, (str, bytes, Mapping, pydantic.BaseModel)):
        raise TypeError("memories must be a sequence of MemoryIn or dicts; use memories.add for one memory")
    items = [_dump(_coerce(MemoryIn, m)) for m in memories]
    if not items:
        raise ValueError("memories must not be empty")
    return Call(
        RequestSpec(
            "POST",
            f"/v1/cubes/{_seg(cube_id)}/memories",
            json={"memories": items},
            idempotency_key=idempotency_key,
        ),
        lambda data: _write_result(data).memories,
    )


def add_memories_detailed(
    cube_id: Id, memories: Sequence[MemoryLike], *, idempotency_key: str | None = None
) -> Call[WriteResult]:
    """``add_memories`` returning the whole answer: the stored memories and admission's decisions."""
    call = add_memories(cube_id, memories, idempotency_key=idempotency_key)
    return Call(call.request, _write_result)


def _write_result(data: Any) -> WriteResult:
    """A write's answer. Each memory also gets its own item's decision as ``admission`` when the server
    did not already put it there, so ``Memory.admission`` is set on every write response."""
    result = WriteResult.model_validate(data)
    by_id = {a.memory_id: a for a in result.admission if a.memory_id is not None}
    for memory in result.memories:
        if memory.admission is None and memory.id in by_id:
            item = by_id[memory.id]
            memory.admission = Admission.model_validate(
                item.model_dump(exclude={"index", "memory_id"}, exclude_none=True)
            )
    return result


def admission_rejected(result: WriteResult) -> _errors.MemcubedError:
    """Raised by ``memories.add`` when admission stored nothing for its single item."""
    reason = result.admission[0].reason if result.admission else None
    return _errors.MemcubedError(
        f"memory rejected by write admission: {reason or 'no reason given'}",
        code="admission_rejected",
        details={"admission": [a.model_dump(mode="json") for a in result.admission]},
    )


def _query_datetime(value: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 for a query string (naive ones are refused, as in bodies)."""
    if value is None:
        return None
    return _AwareDatetime.validate_python(value).isoformat()


def check_list_arguments(
    page_size: int, occurred_after: datetime | None = None, occurred_before: datetime | None = None
) -> None:
    """Checked when ``memories.list`` is called, not at the first page, so the mistake points at the call."""
    if page_size < 1:
        raise ValueError("page_size must be >= 1")
    _query_datetime(occurred_after)
    _query_datetime(occurred_before)


def list_memories_page(
    cube_id: Id,
    *,
    cursor: str | None = None,
    limit: int = 100,
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
) -> Call[MemoryPage]:
    check_list_arguments(limit)
    params: dict[str, str | int | list[str]] = _drop_none(
        {
            "limit": limit,
            "cursor": cursor,
            "memory_type": memory_type,
            "user_id": user_id,
            "agent_id": agent_id,
            "session_id": session_id,
            "tag": tag,
            "status": status,
            "occurred_after": _query_datetime(occurred_after),
            "occurred_before": _query_datetime(occurred_before),
            "speaker": speaker,
            "order": order,
        }
    )
    return Call(
        RequestSpec("GET", f"/v1/cubes/{_seg(cube_id)}/memories", params=params),
        lambda data: _parse(MemoryPage, data),
    )


def get_memory(memory_id: Id) -> Call[Memory]:
    return Call(RequestSpec("GET", f"/v1/memories/{_seg(memory_id)}"), lambda data: _parse(Memory, data))


class _MemoryPatch(_Request):
    """Validates the fields of ``memories.update`` locally (types, aware datetimes); unknown fields pass."""

    content: str | None = None
    memory_type: str | None = None
    occurred_at: RequestDatetime | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    importance: float | None = None
    reason: str | None = None


def update_memory(memory_id: Id, *, reason: str = "update", **fields: Any) -> Call[Memory]:
    if not fields:
        raise ValueError("update needs at least one field to change")
    patch = _MemoryPatch.model_validate({**fields, "reason": reason})
    # exclude_unset, not exclude_none: an explicit None (e.g. occurred_at=None) clears the field.
    body = patch.model_dump(mode="json", exclude_unset=True)
    return Call(
        RequestSpec("PATCH", f"/v1/memories/{_seg(memory_id)}", json=body),
        lambda data: _parse(Memory, data),
    )


def delete_memory(memory_id: Id, *, hard: bool = False) -> Call[Memory]:
    """``hard`` destroys the memory and its versions (sent as ``?hard=true`` only when set)."""
    params: dict[str, str | int | list[str]] | None = {"hard": "true"} if hard else None
    return Call(
        RequestSpec("DELETE", f"/v1/memories/{_seg(memory_id)}", params=params),
        lambda data: _parse(Memory, data),
    )


def memory_feedback(memory_id: Id, signal: FeedbackSignal) -> Call[Memory]:
    """Never retried: the server counts every signal it receives and keeps no idempotency key for it."""
    if signal not in ("useful", "not_useful", "wrong"):
        raise ValueError(f"signal must be 'useful', 'not_useful' or 'wrong', got {signal!r}")
    return Call(
        RequestSpec(
            "POST",
            f"/v1/memories/{_seg(memory_id)}/feedback",
            json={"signal": signal},
            retry=False,
        ),
        lambda data: _parse(Memory, data),
    )


def restore_memory(memory_id: Id, *, idempotency_key: str | None = None) -> Call[Memory]:
    return Call(
        RequestSpec("POST", f"/v1/memories/{_seg(memory_id)}/restore", idempotency_key=idempotency_key),
        lambda data: _parse(Memory, data),
    )


def memory_history(memory_id: Id) -> Call[MemoryHistory]:
    return Call(
        RequestSpec("GET", f"/v1/memories/{_seg(memory_id)}/history"),
        lambda data: _parse(MemoryHistory, data),
    )


def add_messages(
    cube_id: Id,
    session_id: str,
    messages: Sequence[MessageLike],
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    budget: BudgetLike | None = None,
    idempotency_key: str | None = None,
) -> Call[list[Memory]]:
    if isinstance(messages, (str, bytes, Mapping, pydantic.BaseModel)):
        raise TypeError("messages must be a sequence of Message or dicts")
    items = [_dump(_coerce(Message, m)) for m in messages]
    if not items:
        raise ValueError("messages must not be empty")
    body = _drop_none({"session_id": session_id, "user_id": user_id, "agent_id": agent_id})
    body["messages"] = items
    body.update(_budget(budget, None))
    return Call(
        RequestSpec(
            "POST", f"/v1/cubes/{_seg(cube_id)}/messages", json=body, idempotency_key=idempotency_key
        ),
        lambda data: _write_result(data).memories,
    )


def add_messages_detailed(
    cube_id: Id,
    session_id: str,
    messages: Sequence[MessageLike],
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    budget: BudgetLike | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """``add_messages`` returning the whole answer, with ``forgotten``, ``forget_request_id`` and, with a
    ``budget``, the extraction tier's ``routing``."""
    call = add_messages(
        cube_id, session_id, messages, user_id=user_id, agent_id=agent_id, budget=budget,
        idempotency_key=idempotency_key,
    )
    return Call(call.request, _write_result)


def search(
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
) -> Call[SearchResponse]:
    """``explain`` is sent only when true (a server without it refuses the field). ``mode`` defaults to
    ``fast`` without a ``budget``; with one the budget picks the retrieval tier and ``mode`` is not sent.
    ``extra`` keys go into the JSON body as they are, so parameters the server adds later can be used
    before the SDK names them."""
    body: dict[str, Any] = {"query": query, "cube_ids": _ids(cube_ids), "top_k": top_k}
    if budget is None or mode is not None:
        body["mode"] = mode or "fast"
    if filters is not None:
        body["filters"] = _dump(_coerce(SearchFilters, filters))
    if explain:
        body["explain"] = True
    body.update(_budget(budget, use_cache))
    body.update(_json_extra(extra))
    return Call(
        RequestSpec("POST", "/v1/search", json=body, idempotency_key=idempotency_key),
        lambda data: _parse(SearchResponse, data),
    )


# --- budget-tier routing ----------------------------------------------------------------------------

BudgetLike = str | Mapping[str, Any]
"""``"low" | "mid" | "high" | "auto"`` or limits ``{"max_tokens", "max_ms", "max_llm_calls", "tiers"}``."""


def _ids(cube_ids: Id | Sequence[Id]) -> list[str]:
    ids = [cube_ids] if isinstance(cube_ids, (str, uuid.UUID)) else list(cube_ids)
    return [str(i) for i in ids]


def _budget(budget: BudgetLike | None, use_cache: bool | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if budget is not None:
        out["budget"] = budget if isinstance(budget, str) else _json_extra(budget)
    if use_cache is not None:
        out["use_cache"] = use_cache
    return out


def _context_body(query: str, cube_ids: Id | Sequence[Id], top_k: int, budget: BudgetLike | None,
                  use_cache: bool | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query, "cube_ids": _ids(cube_ids), "top_k": top_k}
    body.update(_budget(budget, use_cache))
    body.update(_json_extra(extra))
    return body


def context(
    query: str,
    cube_ids: Id | Sequence[Id],
    *,
    top_k: int = 10,
    budget: BudgetLike | None = None,
    use_cache: bool | None = None,
    **extra: Any,
) -> Call[ContextResponse]:
    return Call(
        RequestSpec("POST", "/v1/context", json=_context_body(query, cube_ids, top_k, budget, use_cache, extra)),
        lambda data: _parse(ContextResponse, data),
    )


def answer(
    query: str,
    cube_ids: Id | Sequence[Id],
    *,
    top_k: int = 10,
    budget: BudgetLike | None = None,
    use_cache: bool | None = None,
    timeout: TimeoutLike | None = None,
    **extra: Any,
) -> Call[AnswerResponse]:
    """``timeout`` defaults to :data:`MODEL_TIMEOUT`: the low tier may load the local model first."""
    return Call(
        RequestSpec("POST", "/v1/answer", json=_context_body(query, cube_ids, top_k, budget, use_cache, extra),
                    timeout=_timeout(timeout, MODEL_TIMEOUT)),
        lambda data: _parse(AnswerResponse, data),
    )


def routing_stats() -> Call[RoutingStats]:
    return Call(RequestSpec("GET", "/v1/routing/stats"), lambda data: _parse(RoutingStats, data))


# --- graph -------------------------------------------------------------------------------------------


def memory_links(memory_id: Id) -> Call[MemoryLinks]:
    return Call(
        RequestSpec("GET", f"/v1/memories/{_seg(memory_id)}/links"),
        lambda data: _parse(MemoryLinks, data),
    )


def _edge_types(types: str | Sequence[str] | None) -> list[str] | None:
    if types is None:
        return None
    names = [types] if isinstance(types, str) else [str(t) for t in types]
    return names or None


def check_page_size(limit: int, name: str = "limit") -> None:
    if limit < 1:
        raise ValueError(f"{name} must be >= 1")


def graph_page(
    cube_id: Id,
    *,
    types: str | Sequence[str] | None = None,
    limit: int = 200,
    cursor: str | None = None,
) -> Call[GraphPage]:
    """``types`` is sent as one repeated ``type`` parameter per edge type."""
    check_page_size(limit)
    params: dict[str, str | int | list[str]] = _drop_none(
        {"type": _edge_types(types), "limit": limit, "cursor": cursor}
    )
    return Call(
        RequestSpec("GET", f"/v1/cubes/{_seg(cube_id)}/graph", params=params),
        lambda data: _parse(GraphPage, data),
    )


def entities_page(
    cube_id: Id, *, q: str | None = None, limit: int = 100, cursor: str | None = None
) -> Call[EntityList]:
    check_page_size(limit)
    params: dict[str, str | int | list[str]] = _drop_none({"q": q, "limit": limit, "cursor": cursor})
    return Call(
        RequestSpec("GET", f"/v1/cubes/{_seg(cube_id)}/entities", params=params),
        lambda data: _parse(EntityList, data),
    )


def check_wait_arguments(timeout: float, poll: float) -> None:
    if timeout < 0:
        raise ValueError("timeout must be >= 0")
    if poll <= 0:
        raise ValueError("poll must be > 0")


def enrichment_timeout(cube: Cube, timeout: float) -> _errors.APITimeoutError:
    """Raised by ``cubes.wait_enriched`` when memories are still pending after ``timeout`` seconds."""
    return _errors.APITimeoutError(
        f"cube {cube.id} still has {cube.enrichment_pending} memories to enrich after {timeout:g} s",
        code="enrichment_timeout",
        details={"cube_id": cube.id, "enrichment_pending": cube.enrichment_pending},
    )


# --- jobs, forgetting policy, purge -------------------------------------------------------------------

JOB_FINISHED = frozenset({"done", "failed", "cancelled"})


def list_jobs(
    *,
    cube_id: Id | None = None,
    status: str | None = None,
    kind: str | None = None,
    limit: int = 50,
) -> Call[list[Job]]:
    check_page_size(limit)
    params: dict[str, str | int | list[str]] = _drop_none(
        {"cube_id": None if cube_id is None else str(cube_id), "status": status, "kind": kind, "limit": limit}
    )
    return Call(
        RequestSpec("GET", "/v1/jobs", params=params),
        lambda data: [Job.model_validate(j) for j in data["jobs"]],
    )


def get_job(job_id: Id) -> Call[Job]:
    return Call(RequestSpec("GET", f"/v1/jobs/{_seg(job_id)}"), lambda data: _parse(Job, data))


def cancel_job(job_id: Id) -> Call[Job]:
    return Call(
        RequestSpec("POST", f"/v1/jobs/{_seg(job_id)}/cancel"),
        lambda data: _parse(Job, data),
    )


def job_timeout(job: Job, timeout: float) -> _errors.APITimeoutError:
    """Raised by ``jobs.wait`` when the job is still unfinished after ``timeout`` seconds."""
    return _errors.APITimeoutError(
        f"job {job.id} is still {job.status} after {timeout:g} s",
        code="job_timeout",
        details={"job_id": job.id, "status": job.status, "progress": job.progress},
    )


def consolidate(
    cube_id: Id,
    *,
    forget: bool | None = None,
    summaries: bool | None = None,
) -> Call[Job]:
    """The body is sent only when an option is given (the server's defaults otherwise). A retry cannot
    queue a second job: the server answers with the same kind's job still queued on the cube."""
    body = _drop_none({"forget": forget, "summaries": summaries}) or None
    return Call(
        RequestSpec("POST", f"/v1/cubes/{_seg(cube_id)}/consolidate", json=body),
        lambda data: _parse(Job, data),
    )


def forget(cube_id: Id) -> Call[Job]:
    return Call(
        RequestSpec("POST", f"/v1/cubes/{_seg(cube_id)}/forget"),
        lambda data: _parse(Job, data),
    )


def get_policy(cube_id: Id) -> Call[Policy]:
    return Call(RequestSpec("GET", f"/v1/cubes/{_seg(cube_id)}/policy"), lambda data: _parse(Policy, data))


def preview_policy(cube_id: Id, limit: int = 100) -> Call[PolicyPreview]:
    return Call(
        RequestSpec("GET", f"/v1/cubes/{_seg(cube_id)}/policy/preview", params={"limit": limit}),
        lambda data: _parse(PolicyPreview, data),
    )


def set_policy(cube_id: Id, **fields: Any) -> Call[Policy]:
    """PUT replaces the whole policy: fields not given take the server's defaults."""
    return Call(
        RequestSpec("PUT", f"/v1/cubes/{_seg(cube_id)}/policy", json=_json_extra(fields)),
        lambda data: _parse(Policy, data),
    )


def purge(
    cube_id: Id,
    *,
    statuses: Sequence[str] | None = None,
    older_than_days: float | None = None,
) -> Call[PurgeResult]:
    if isinstance(statuses, str):
        statuses = [statuses]
    body = _drop_none(
        {"statuses": None if statuses is None else list(statuses), "older_than_days": older_than_days}
    ) or None
    return Call(
        RequestSpec("POST", f"/v1/cubes/{_seg(cube_id)}/purge", json=body),
        lambda data: _parse(PurgeResult, data),
    )


# --- activations and generation ----------------------------------------------------------------------


def create_activation(
    cube_id: Id,
    *,
    text: str | None = None,
    memory_ids: Sequence[Id] | None = None,
    query: str | None = None,
    top_k: int | None = None,
    timeout: TimeoutLike | None = None,
    idempotency_key: str | None = None,
) -> Call[Activation]:
    """Exactly one source: ``text``, ``memory_ids`` (rendered in that order) or ``query`` (its ``top_k``
    best memories). Checked here so a mistake fails before anything is sent."""
    if sum(v is not None for v in (text, memory_ids, query)) != 1:
        raise ValueError("give exactly one of text, memory_ids or query")
    if top_k is not None and query is None:
        raise ValueError("top_k only applies with query")
    ids: list[str] | None = None
    if memory_ids is not None:
        if isinstance(memory_ids, (str, bytes, uuid.UUID)):
            raise TypeError("memory_ids must be a sequence of ids")
        ids = [str(i) for i in memory_ids]
        if not ids:
            raise ValueError("memory_ids must not be empty")
    body = _drop_none({"text": text, "memory_ids": ids, "query": query, "top_k": top_k})
    return Call(
        RequestSpec(
            "POST",
            f"/v1/cubes/{_seg(cube_id)}/activations",
            json=body,
            idempotency_key=idempotency_key,
            timeout=_timeout(timeout, MODEL_TIMEOUT),
        ),
        lambda data: _parse(Activation, data),
    )


def list_activations(cube_id: Id) -> Call[list[Activation]]:
    return Call(
        RequestSpec("GET", f"/v1/cubes/{_seg(cube_id)}/activations"),
        lambda data: [Activation.model_validate(a) for a in data["activations"]],
    )


def activation_stats() -> Call[ActivationStats]:
    return Call(RequestSpec("GET", "/v1/activations/stats"), lambda data: _parse(ActivationStats, data))


def delete_activation(activation_id: Id) -> Call[Activation]:
    return Call(
        RequestSpec("DELETE", f"/v1/activations/{_seg(activation_id)}"),
        lambda data: _parse(Activation, data),
    )


def generate(
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
) -> Call[GenerateResponse]:
    """``timeout`` defaults to :data:`MODEL_TIMEOUT`, not the client's: the first call may load the model."""
    body: dict[str, Any] = {
        "prompt": prompt,
        "max_new_tokens": max_new_tokens,
        "use_activation": use_activation,
        "chat": chat,
        "temperature": temperature,
    }
    body.update(
        _drop_none(
            {
                "cube_id": None if cube_id is None else str(cube_id),
                "activation_id": None if activation_id is None else str(activation_id),
                "seed": seed,
                "adapter_ids": None if adapter_ids is None else [str(a) for a in adapter_ids],
            }
        )
    )
    body.update(_json_extra(extra))
    return Call(
        RequestSpec(
            "POST",
            "/v1/generate",
            json=body,
            idempotency_key=idempotency_key,
            timeout=_timeout(timeout, MODEL_TIMEOUT),
        ),
        lambda data: _parse(GenerateResponse, data),
    )


# --- parametric memory (LoRA adapters) ---------------------------------------------------------------


def _bytes_of(value: bytes | str | os.PathLike[str]) -> bytes:
    if isinstance(value, bytes):
        return value
    with open(value, "rb") as fh:
        return fh.read()


def upload_adapter(
    cube_id: Id,
    config: Mapping[str, Any] | bytes | str | os.PathLike[str],
    weights: bytes | str | os.PathLike[str],
    *,
    name: str = "adapter",
    idempotency_key: str | None = None,
) -> Call[Adapter]:
    """A peft ``adapter_config.json`` (a mapping, its bytes or a path) and ``adapter_model.safetensors``
    (bytes or a path) as one multipart upload; the server checks both against its model."""
    raw_config = json.dumps(dict(config)).encode() if isinstance(config, Mapping) else _bytes_of(config)
    return Call(
        RequestSpec(
            "POST",
            f"/v1/cubes/{_seg(cube_id)}/adapters",
            files={
                "adapter_config": ("adapter_config.json", raw_config, "application/json"),
                "adapter_model": ("adapter_model.safetensors", _bytes_of(weights), "application/octet-stream"),
            },
            data={"name": name},
            idempotency_key=idempotency_key,
            timeout=MODEL_TIMEOUT,
        ),
        lambda data: _parse(Adapter, data),
    )


def list_adapters(cube_id: Id, *, include_deleted: bool = False) -> Call[list[Adapter]]:
    params: dict[str, str | int | list[str]] | None = {"include_deleted": "true"} if include_deleted else None
    return Call(
        RequestSpec("GET", f"/v1/cubes/{_seg(cube_id)}/adapters", params=params),
        lambda data: [Adapter.model_validate(a) for a in data["adapters"]],
    )


def get_adapter(adapter_id: Id) -> Call[Adapter]:
    return Call(RequestSpec("GET", f"/v1/adapters/{_seg(adapter_id)}"), lambda data: _parse(Adapter, data))


def delete_adapter(adapter_id: Id) -> Call[Adapter]:
    return Call(RequestSpec("DELETE", f"/v1/adapters/{_seg(adapter_id)}"), lambda data: _parse(Adapter, data))


def restore_adapter(adapter_id: Id) -> Call[Adapter]:
    return Call(
        RequestSpec("POST", f"/v1/adapters/{_seg(adapter_id)}/restore"), lambda data: _parse(Adapter, data)
    )


def distill_adapter(
    cube_id: Id,
    *,
    name: str | None = None,
    memory_filter: FiltersLike | None = None,
    steps: int | None = None,
    rank: int | None = None,
    learning_rate: float | None = None,
    idempotency_key: str | None = None,
) -> Call[Job]:
    body = _drop_none({"name": name, "steps": steps, "rank": rank, "learning_rate": learning_rate})
    if memory_filter is not None:
        body["memory_filter"] = _dump(_coerce(SearchFilters, memory_filter))
    return Call(
        RequestSpec("POST", f"/v1/cubes/{_seg(cube_id)}/adapters/distill", json=body,
                    idempotency_key=idempotency_key),
        lambda data: _parse(Job, data),
    )
