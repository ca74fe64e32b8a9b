"""Typed request and response models.

Response models allow extra fields, so an older SDK keeps working when the server adds fields (they stay
reachable as attributes and in ``model_dump()``). Every datetime is timezone-aware: a naive datetime in a
response is read as UTC (the server stores UTC), a naive datetime in a request is rejected, because
guessing the zone of an event time the caller gave would silently shift it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "Activation",
    "ActivationStats",
    "Admission",
    "AnswerResponse",
    "ContextItem",
    "ContextResponse",
    "Cube",
    "Edge",
    "Entity",
    "EntityList",
    "GenerateResponse",
    "GraphNode",
    "GraphPage",
    "ImportResult",
    "Job",
    "KeyCreated",
    "KeyInfo",
    "KeyRevoked",
    "Memory",
    "MemoryFeedback",
    "MemoryHistory",
    "MemoryIn",
    "MemoryLink",
    "MemoryLinks",
    "MemoryPage",
    "MemoryVersion",
    "Message",
    "ModelInfo",
    "Policy",
    "PolicyPreview",
    "PolicyPreviewItem",
    "PurgeResult",
    "Routing",
    "RoutingCache",
    "RoutingCost",
    "RoutingStats",
    "SearchFilters",
    "SearchHit",
    "SearchResponse",
    "Tenant",
    "TenantCreated",
    "TierStats",
    "WriteResult",
]


def _as_utc_if_naive(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _require_aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError("datetime must be timezone-aware (e.g. datetime.now(UTC)): a naive one is ambiguous")
    return value


# Datetimes in responses: always aware; naive ones (never sent by the server today) are taken as UTC.
ResponseDatetime = Annotated[datetime, AfterValidator(_as_utc_if_naive)]
# Datetimes in requests: must carry a zone.
RequestDatetime = Annotated[datetime, AfterValidator(_require_aware)]


class _Response(BaseModel):
    """Base of response models: tolerant of fields added by newer servers."""

    model_config = ConfigDict(extra="allow", frozen=False)


class _Request(BaseModel):
    """Base of request models: extra fields pass through so new server fields can be sent before the SDK
    names them; the server validates them and names any bad field in its 422."""

    model_config = ConfigDict(extra="allow")


# --- admin -------------------------------------------------------------------------------------------


class TenantCreated(_Response):
    """A new tenant and its first tenant-scoped API key. The key is shown only once."""

    id: str
    name: str
    api_key: str | None
    """None on an idempotent replay: the key is shown once and never stored (``api_key_withheld``)."""
    api_key_withheld: bool = False
    key_id: str


class Tenant(_Response):
    id: str
    name: str
    created_at: ResponseDatetime


class Quota(_Response):
    """One quota of a tenant: ``limit`` (the override if an admin set one, else ``default``) and ``used``
    (a count, or bytes for the ``*_bytes`` quotas)."""

    name: str
    limit: int
    used: int
    default: int
    overridden: bool


class TenantQuotas(_Response):
    """A tenant's quotas, and the per-request limits every tenant shares (``import_bytes``,
    ``context_tokens``)."""

    tenant_id: str
    quotas: list[Quota]
    request_limits: dict[str, int]

    def __getitem__(self, name: str) -> Quota:
        """``quotas["memories"]``: the quota of that name."""
        return next(q for q in self.quotas if q.name == name)


class KeyCreated(_Response):
    """A new API key. ``api_key`` is shown only once; ``id`` is what ``keys.revoke`` takes."""

    id: str
    tenant_id: str | None = None
    scope: str
    api_key: str | None
    """None on an idempotent replay: the key is shown once and never stored (``api_key_withheld``)."""
    api_key_withheld: bool = False
    created_at: ResponseDatetime
    cube_ids: list[str] | None = None
    permission: str = "admin"


class KeyInfo(_Response):
    """A key as ``keys.list`` shows it: what it may do and whether it is revoked; never the key itself."""

    id: str
    name: str | None = None
    cube_ids: list[str] | None = None
    permission: str
    created_at: ResponseDatetime
    revoked_at: ResponseDatetime | None = None


class KeyRevoked(_Response):
    id: str
    revoked_at: ResponseDatetime


# --- cubes -------------------------------------------------------------------------------------------


class Cube(_Response):
    """A cube. ``enrichment_pending`` counts memories whose enrichment (fine-search indexes, entities, graph
    edges) has not finished yet; ``cubes.wait_enriched`` waits for it to reach 0."""

    id: str
    tenant_id: str
    name: str
    description: str | None = None
    owner_id: str | None = None
    status: str
    memory_count: int
    forget_policy: str = "archive"
    enrichment_pending: int = 0
    created_at: ResponseDatetime
    updated_at: ResponseDatetime


class ImportResult(_Response):
    """``id_map`` maps each memory id in the imported file to the id it got in the target cube."""

    imported: int
    id_map: dict[str, str] = Field(default_factory=dict)


# --- memories ----------------------------------------------------------------------------------------


class MemoryFeedback(_Response):
    """Counts of the feedback signals a memory received (``memories.feedback``)."""

    useful: int = 0
    not_useful: int = 0
    wrong: int = 0


class Admission(_Response):
    """What write admission decided for one written item (only on write responses): ``status`` is
    ``admitted``, ``merged`` (a duplicate of ``merged_into``, with its ``similarity``) or ``rejected``.
    In a write response's ``admission`` list, ``index`` is the input position and ``memory_id`` the stored
    memory (``None`` when rejected)."""

    status: str
    merged_into: str | None = None
    similarity: float | None = None
    reason: str | None = None
    index: int | None = None
    memory_id: str | None = None


class Memory(_Response):
    """One memory. ``occurred_at`` is event time; ``created_at``/``updated_at`` are system time."""

    id: str
    cube_id: str
    kind: str
    memory_type: str
    content: str
    content_hash: str
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    occurred_at: ResponseDatetime | None = None
    created_at: ResponseDatetime
    updated_at: ResponseDatetime
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, Any] = Field(default_factory=dict)
    status: str
    version: int
    importance: float
    access_count: int = 0
    last_accessed_at: ResponseDatetime | None = None
    embedding_model: str
    embedding_dim: int
    merged_into: str | None = None
    superseded_by: str | None = None
    tier: str = "short"
    heat: float = 0.0
    feedback: MemoryFeedback = Field(default_factory=lambda: MemoryFeedback())
    admission: Admission | None = None


class StaleDerived(_Response):
    """Derived caches and adapters that may still hold what a forget request forgot: delete or rebuild them."""

    activations: list[str] = Field(default_factory=list)
    adapters: list[str] = Field(default_factory=list)


class WriteResult(_Response):
    """The whole answer of a write: the stored memories (admitted ones active, merged ones archived with
    ``merged_into``) and admission's decision for every input item, in input order (a rejected item stores
    nothing and has ``memory_id`` ``None``)."""

    memories: list[Memory]
    admission: list[Admission] = Field(default_factory=list)
    forgotten: list[str] = Field(default_factory=list)
    forget_request_id: str | None = None
    forget_flagged: StaleDerived | None = None
    routing: Routing | None = None
    llm: LLMReport | None = None


class ForgetRequest(_Response):
    """A forget request found in messages ("forget my address"): its subject (never the forgotten content), the
    memories it archived (``status`` applied, revertible) or destroyed (``purged``), or ``reverted``."""

    id: str
    cube_id: str
    subject: str
    detector: str
    policy: str
    status: str
    memory_ids: list[str]
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: ResponseDatetime
    reverted_at: ResponseDatetime | None = None


class MemoryPage(_Response):
    """One page of ``GET /v1/cubes/{cube_id}/memories``; ``memories.list`` follows ``next_cursor`` for you."""

    memories: list[Memory]
    next_cursor: str | None = None


class MemoryVersion(_Response):
    """A prior state of a memory, kept with the reason it was replaced."""

    version: int
    reason: str
    created_at: ResponseDatetime
    snapshot: dict[str, Any]


class MemoryHistory(_Response):
    memory_id: str
    current_version: int
    versions: list[MemoryVersion]


class SearchHit(_Response):
    """A result; ``explain`` (with ``search(..., explain=True)``) holds its per-channel ranks and scores,
    e.g. ``{"channels": {"dense": {"rank": 1, "score": 0.8}, "bm25": {...}}, ...}``."""

    memory: Memory
    score: float
    explain: dict[str, Any] | None = None
    supersedes: list[str] = Field(default_factory=list)  # older memories this one replaced
    newer_statement: str | None = None  # a later memory suggesting this one is out of date (inferred, not stored)


class RoutingCost(_Response):
    ms: dict[str, float]
    tokens: int
    llm_calls: int


class RoutingCache(_Response):
    hit: bool
    kind: str | None = None


class LLMReport(_Response):
    """What a request's LLM steps did: ``used`` (a call answered) and ``fallback`` (why a step took its no-LLM
    path: ``timeout``, ``circuit_open``, ``error``, ``not_configured``; ``None`` when none did)."""

    used: bool = False
    fallback: str | None = None


class Routing(_Response):
    """Which tier each module ran at (``tiers``), why (``reasons``: ``forced``, ``rule: ...``,
    ``policy vN: score ...``, ``cache hit``), the policy used, warnings, the measured cost, and the query
    features the router decided on (``None`` on a cache hit)."""

    tiers: dict[str, str]
    reasons: dict[str, str]
    policy: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)
    cost: RoutingCost
    cache: RoutingCache
    llm: LLMReport = Field(default_factory=LLMReport)
    features: dict[str, Any] | None = None


class SearchResponse(_Response):
    results: list[SearchHit]
    took_ms: float
    routing: Routing | None = None

    @property
    def memories(self) -> list[Memory]:
        """The hits' memories, best first: what an agent usually puts in its prompt."""
        return [hit.memory for hit in self.results]


class ContextItem(_Response):
    """A piece of a context: a retrieved ``snippet`` or what assembly added (``neighbour``, ``summary``,
    ``graph``); ``memory_id`` is null for a summary written for the request."""

    memory_id: str | None = None
    content: str
    speaker: str | None = None
    occurred_at: ResponseDatetime | None = None
    session_id: str | None = None
    score: float | None = None
    role: str


class Evidence(_Response):
    """What the abstention decision saw: best cosine, share of the query's words and names found."""

    cosine: float
    overlap: float
    names: float | None = None


class ContextResponse(_Response):
    context: str
    items: list[ContextItem]
    tokens: int
    abstained: bool
    full_context: bool
    routing: Routing
    evidence: Evidence | None = None


class AnswerResponse(ContextResponse):
    answer: str | None = None
    model: str | None = None


class RoutingStats(_Response):
    requests: int
    hits: int
    misses: int
    hit_rate: float
    tiers: dict[str, dict[str, int]]
    mean_ms: dict[str, dict[str, float]]
    cache_backend: str
    modules: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    """Every module's tiers on this server: ``{"axis", "does", "available"}``."""


# --- jobs, forgetting policy, purge -------------------------------------------------------------------


class Job(_Response):
    """A background job (``consolidate`` or ``forget``) of a cube. ``status`` goes ``queued`` → ``running``
    → ``done`` | ``failed`` | ``cancelled``; ``jobs.wait`` polls until it is finished."""

    id: str
    tenant_id: str
    cube_id: str
    kind: str
    status: str
    trigger: str
    attempts: int
    max_attempts: int
    error: str | None = None
    progress: float = 0.0
    params: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] = Field(default_factory=dict)
    created_at: ResponseDatetime
    started_at: ResponseDatetime | None = None
    finished_at: ResponseDatetime | None = None
    updated_at: ResponseDatetime

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")


# --- lifecycle: archive, fork, snapshots, merge, fuse ---------------------------------------------------


class ArchiveCounts(_Response):
    memories: int = 0
    versions: int = 0
    edges: int = 0
    entities: int = 0
    activations: int = 0
    adapters: int = 0


class ArchiveImportResult(_Response):
    """The cube an archive import or a fork created. ``embeddings`` is ``reused`` (same embedding model) or
    ``recomputed``; ``activations_stale`` counts KV caches of another model, rebuilt on demand."""

    cube: Cube
    counts: ArchiveCounts
    activations_stale: int = 0
    embeddings: str


class Snapshot(_Response):
    """A stored copy of a cube's memories and graph; ``kind`` is ``manual`` or ``pre_restore``."""

    id: str
    cube_id: str
    label: str | None = None
    kind: str
    memory_count: int
    size_bytes: int
    sha256: str
    created_at: ResponseDatetime


class RestoreResult(_Response):
    """What a restore did; restoring ``pre_restore_snapshot_id`` undoes it."""

    snapshot_id: str
    pre_restore_snapshot_id: str
    changed: int
    recreated: int
    archived: int
    unchanged: int


class MergeResult(_Response):
    """Admission's decisions for the source cube's active memories, merged into the target."""

    from_cube_id: str
    considered: int
    admitted: int
    merged: int
    rejected: int


class FuseResult(_Response):
    """The job that fuses the cube's plaintext into ``activation`` or ``parametric`` memory."""

    into: str
    job: Job


class Policy(_Response):
    """A cube's forgetting policy; ``is_default`` is true until one is set with ``cubes.set_policy``.
    Forgetting archives memories (restorable); it never destroys them."""

    cube_id: str
    enabled: bool
    threshold: float
    max_active: int | None = None
    ttl_days: float | None = None
    half_life_days: float
    min_age_hours: float
    is_default: bool
    updated_at: ResponseDatetime | None = None


class PolicyPreviewItem(_Response):
    memory: Memory
    retention: float
    reason: str


class PolicyPreview(_Response):
    """What the cube's forgetting policy would archive now, lowest retention first (``memories`` holds the
    first ``limit`` of ``total``); a preview changes nothing."""

    cube_id: str
    policy: Policy
    active: int
    considered: int
    total: int
    memories: list[PolicyPreviewItem]


class PurgeResult(_Response):
    """Memories destroyed by ``cubes.purge``."""

    purged: int
    memory_ids: list[str] = Field(default_factory=list)


# --- graph -------------------------------------------------------------------------------------------


class Edge(_Response):
    """A directed, typed edge between two memories of a cube (``similar``, ``shares_entity``,
    ``next_in_session``, ``updates``, ``contradicts``, ``derived_from``, ``mentions``)."""

    id: str
    source_id: str
    target_id: str
    type: str
    weight: float
    created_at: ResponseDatetime


class MemoryLink(_Response):
    """An edge seen from one memory: ``direction`` is ``"out"`` or ``"in"``, ``memory_id``/``content`` the
    other end."""

    edge: Edge
    direction: str
    memory_id: str
    content: str


class MemoryLinks(_Response):
    """A memory's entity names and every edge touching it."""

    memory_id: str
    entities: list[str] = Field(default_factory=list)
    links: list[MemoryLink] = Field(default_factory=list)


class GraphNode(_Response):
    id: str
    content: str
    memory_type: str
    session_id: str | None = None
    occurred_at: ResponseDatetime | None = None


class GraphPage(_Response):
    """A page of a cube's edges and every node they touch, so each page stands on its own."""

    nodes: list[GraphNode]
    edges: list[Edge]
    next_cursor: str | None = None


class Entity(_Response):
    """A named entity extracted from a cube's memories; ``mentions`` counts the memories naming it."""

    id: str
    name: str
    kind: str
    mentions: int
    created_at: ResponseDatetime


class EntityList(_Response):
    """One page of ``GET /v1/cubes/{cube_id}/entities``; pass ``next_cursor`` back as ``cursor``."""

    entities: list[Entity]
    next_cursor: str | None = None


# --- activations and generation ----------------------------------------------------------------------


class Activation(_Response):
    """A stored KV cache of a rendered prefix (``text``). A prompt that starts with ``text`` reuses it.
    ``compatible`` is ``None`` until the server has loaded its model."""

    id: str
    cube_id: str
    model_id: str
    fingerprint: str
    compatible: bool | None = None
    source: str
    tokens: int
    token_hash: str
    bytes: int
    tier: str | None = None
    precision: str
    status: str
    hits: int
    created_at: ResponseDatetime
    last_used_at: ResponseDatetime | None = None
    text: str


class TierStats(_Response):
    bytes: int
    entries: int
    budget_bytes: int
    available: bool


class ModelInfo(_Response):
    loaded: bool
    model_id: str | None = None
    fingerprint: str | None = None
    device: str | None = None
    dtype: str | None = None
    precision: str | None = None


class ActivationStats(_Response):
    """The caller's activations per tier (``gpu``, ``cpu``, ``disk``), and the server process's counters
    since it started."""

    tiers: dict[str, TierStats]
    hits: int
    misses: int
    evictions: int
    promotions: int
    demotions: int
    model: ModelInfo


class GenerateResponse(_Response):
    """A completion. ``activation_id``/``tier_hit``/``reused_tokens`` say which stored cache was reused."""

    text: str
    token_ids: list[int]
    finish_reason: str
    model_id: str
    fingerprint: str
    adapter_ids: list[str] = []
    activation_id: str | None = None
    tier_hit: str | None = None
    reused_tokens: int
    prefill_tokens: int
    prompt_tokens: int
    ttft_ms: float
    total_ms: float


class Adapter(_Response):
    """A LoRA adapter of the server's model (parametric memory): one version of a named adapter of a cube.
    ``status`` is ``deleted`` after a (restorable) delete; ``metrics`` hold a distillation's measurements."""

    id: str
    cube_id: str
    name: str
    version: int
    base_model: str
    base_fingerprint: str
    rank: int
    alpha: int
    target_modules: list[str]
    sha256: str
    size_bytes: int
    source: str
    status: str
    created_by: str | None = None
    job_id: str | None = None
    metrics: dict[str, Any] = {}
    created_at: ResponseDatetime
    deleted_at: ResponseDatetime | None = None


# --- requests ----------------------------------------------------------------------------------------


class MemoryIn(_Request):
    """A memory to add. Unset fields take the server's defaults (episodic, importance 0.5)."""

    content: str
    memory_type: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    occurred_at: RequestDatetime | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    importance: float | None = None


class Message(_Request):
    """A conversation turn for ``messages.add``; ``timestamp`` becomes the memory's event time."""

    role: str
    content: str
    speaker: str | None = None
    timestamp: RequestDatetime | None = None
    id: str | None = None


class SearchFilters(_Request):
    """Search filters; ``occurred_after``/``occurred_before`` bound the event time."""

    memory_type: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    tag: str | None = None
    status: str | None = None
    occurred_after: RequestDatetime | None = None
    occurred_before: RequestDatetime | None = None
    speaker: str | None = None


class WhoAmI(_Response):
    """What the calling key may do, so a client shows only what the API will allow."""

    key_id: str
    scope: str
    tenant_id: str | None = None
    cube_ids: list[str] | None = None
    permission: str
