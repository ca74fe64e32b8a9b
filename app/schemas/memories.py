"""Memory, message and search requests and responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.schemas.common import Text, UtcDatetime
from app.schemas.forget_requests import StaleDerived
from app.schemas.jobs import Admission, AdmissionItem
from app.schemas.routing import BUDGET_DESCRIPTION, Budget, LLMReport, Routing

MemoryType = Literal["episodic", "semantic", "procedural"]
Channel = Literal["dense", "dense_window", "bm25", "bm25_window", "bm25_window2", "splade", "splade_window",
                  "splade_window2", "time", "typed"]
MemoryStatus = Literal["active", "archived", "deleted"]
MemoryOrder = Literal["created", "event"]
Name = Field(default=None, max_length=200)
# Tags are stored as varchar(200)[]: longer ones must be refused, not truncated.
Tag = Annotated[Text, Field(max_length=200)]


class MemoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1)
    memory_type: MemoryType = "episodic"
    user_id: Text | None = Name
    agent_id: Text | None = Name
    session_id: Text | None = Name
    occurred_at: UtcDatetime | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, Any] = Field(default_factory=dict)
    importance: float = Field(default=0.5, ge=0.0, le=1.0)


class MemoriesCreate(BaseModel):
    memories: list[MemoryIn] = Field(min_length=1)


class MemoryPatch(BaseModel):
    """Fields to change; each PATCH makes a new version. ``reason`` is kept with the prior version."""

    model_config = ConfigDict(extra="forbid")

    content: str | None = Field(default=None, min_length=1)
    memory_type: MemoryType | None = None
    occurred_at: UtcDatetime | None = None
    tags: list[Tag] | None = Field(default=None, max_length=100)
    metadata: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    importance: float | None = Field(default=None, ge=0.0, le=1.0)
    reason: Text = Field(default="update", max_length=200)

    @field_validator("content", "memory_type", "tags", "importance", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Omit a field to leave it unchanged; these columns cannot be null.
        if value is None:
            raise ValueError("cannot be null; omit the field to leave it unchanged")
        return value

    @model_validator(mode="after")
    def _something_to_change(self) -> MemoryPatch:
        if not (self.model_fields_set - {"reason"}):
            raise ValueError("PATCH needs at least one field to change")
        return self


class Feedback(BaseModel):
    useful: int = 0
    not_useful: int = 0
    wrong: int = 0


class MemoryOut(BaseModel):
    id: uuid.UUID
    cube_id: uuid.UUID
    kind: str
    memory_type: str
    content: str
    content_hash: str
    user_id: str | None
    agent_id: str | None
    session_id: str | None
    occurred_at: datetime | None
    created_at: datetime
    updated_at: datetime
    tags: list[str]
    metadata: dict[str, Any]
    source: dict[str, Any]
    status: str
    version: int
    importance: float
    access_count: int
    last_accessed_at: datetime | None
    embedding_model: str
    embedding_dim: int
    merged_into: uuid.UUID | None = Field(default=None, description="Archived as a duplicate of this memory.")
    superseded_by: uuid.UUID | None = Field(default=None, description="Archived: this newer memory replaced it.")
    tier: str = Field(default="short", description="short (recent turns), mid (topic segments), long (profile).")
    heat: float = Field(default=0.0, description="Visits, recency and length, as consolidation last computed it.")
    feedback: Feedback = Field(default_factory=lambda: Feedback(), description="Feedback signals received.")
    admission: Admission | None = Field(
        default=None, description="Only in the response of a write: what admission decided for this item.")


INT32 = 2**31 - 1


class ImportedVersion(BaseModel):
    """A version in an import line, checked as strictly as the service writes one."""

    version: int = Field(ge=1, le=INT32)
    reason: Text = Field(max_length=200)
    created_at: UtcDatetime
    snapshot: dict[str, Any]


class ImportedMemory(BaseModel):
    """The memory of an import line: an export may have been edited, so it is checked like new input."""

    id: uuid.UUID
    kind: Literal["plaintext"] = "plaintext"
    memory_type: MemoryType
    content: str = Field(min_length=1)
    user_id: Text | None = Name
    agent_id: Text | None = Name
    session_id: Text | None = Name
    occurred_at: UtcDatetime | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, Any] = Field(default_factory=dict)
    status: MemoryStatus = "active"
    version: int = Field(default=1, ge=1, le=INT32)
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    access_count: int = Field(default=0, ge=0, le=INT32)
    last_accessed_at: UtcDatetime | None = None


class ImportLine(BaseModel):
    """One memory line of a cube export (JSON Lines), as read back by import."""

    type: Literal["memory"]
    memory: ImportedMemory
    versions: list[ImportedVersion] = Field(default_factory=list)

    @model_validator(mode="after")
    def _versions_before_current(self) -> ImportLine:
        numbers = [v.version for v in self.versions]
        if len(set(numbers)) != len(numbers) or any(n >= self.memory.version for n in numbers):
            raise ValueError("versions must be distinct and older than memory.version")
        return self


class MemoryList(BaseModel):
    memories: list[MemoryOut]
    next_cursor: str | None = None


class MemoryVersionOut(BaseModel):
    version: int
    reason: str
    created_at: datetime
    snapshot: dict[str, Any]


class MemoryHistory(BaseModel):
    memory_id: uuid.UUID
    current_version: int
    versions: list[MemoryVersionOut]


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Text = Field(min_length=1, max_length=50)
    speaker: Text | None = Field(default=None, max_length=200)
    content: str = Field(min_length=1)
    timestamp: UtcDatetime | None = None
    id: Text | None = Field(default=None, max_length=200)


class MessagesCreate(BaseModel):
    session_id: Text = Field(min_length=1, max_length=200)
    user_id: Text | None = Name
    agent_id: Text | None = Name
    messages: list[MessageIn] = Field(min_length=1)
    budget: Budget | None = Field(
        default=None, description="Extraction tier: low = raw turns, mid = + rule-based facts and entities, "
        "high = + LLM-extracted facts (needs an LLM), auto = mid.")


class MemoryFilters(BaseModel):
    """The conditions a listing, a filtered search and a distillation select memories by (one set of fields)."""

    memory_type: MemoryType | None = None
    user_id: Text | None = None
    agent_id: Text | None = None
    session_id: Text | None = None
    tag: Text | None = None
    status: MemoryStatus | None = None
    occurred_after: UtcDatetime | None = None
    occurred_before: UtcDatetime | None = None
    speaker: Text | None = Field(default=None, description="Who said it: a message's speaker (metadata.speaker).")


class SearchFilters(MemoryFilters):
    model_config = ConfigDict(extra="forbid")

    status: Literal["active"] | None = Field(
        default=None, description="Only active memories are searchable; archived and deleted ones are listed."
    )


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=8192)
    cube_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)
    top_k: int = Field(default=10, ge=1, le=200)
    filters: SearchFilters = Field(default_factory=SearchFilters)
    mode: Literal["fast", "fine"] = Field(
        default="fast",
        description="fast: dense only. fine: dense + BM25 + SPLADE over plain and windowed text, time, "
        "per-type slots, fused by RRF and expanded through the memory graph.",
    )
    explain: bool = Field(default=False, description="Return each result's per-channel ranks and scores.")
    channels: list[Channel] | None = Field(
        default=None, description="Fine mode only: the channels to fuse (default all); for ablations."
    )
    graph: bool = Field(default=True, description="Fine mode only: expand the fused hits through the memory graph.")
    budget: Budget | None = Field(
        default=None, description="Route retrieval by budget (" + BUDGET_DESCRIPTION + "); the response then "
        "carries routing. Replaces mode, channels, graph and explain.")
    use_cache: bool = Field(default=True, description="With a budget: serve from (and fill) the semantic cache.")
    include_superseded: bool = Field(
        default=False, description="Also return, right after each hit, the older memories it superseded (status "
        "archived, with superseded_by): the attribute's history. By default only current values come back.")

    @model_validator(mode="after")
    def _fine_options(self) -> SearchRequest:
        if self.budget is not None and self.model_fields_set & {"mode", "channels", "graph", "explain"}:
            raise ValueError("budget picks the retrieval tier: send it without mode, channels, graph or explain")
        if self.mode == "fast" and (self.channels is not None or "graph" in self.model_fields_set):
            raise ValueError("channels and graph apply to mode 'fine' only")
        if self.channels is not None and not self.channels:
            raise ValueError("channels must name at least one channel")
        return self


class SearchHit(BaseModel):
    memory: MemoryOut
    score: float
    explain: dict[str, Any] | None = None
    supersedes: list[uuid.UUID] = Field(
        default_factory=list, description="Older memories this one replaced (another value of the same attribute).")
    newer_statement: uuid.UUID | None = Field(
        default=None, description="A later memory suggesting this one is out of date, inferred when searching (not "
        "stored): the same speaker's statement worded as a change (now, switched, moved, instead…) that is most "
        "like this one among the results, or the memory that superseded one whose value this repeats. It is "
        "ranked before this one; the agent decides.")


class SearchResponse(BaseModel):
    results: list[SearchHit]
    took_ms: float
    routing: Routing | None = Field(default=None, description="Tiers, reasons and cost, when a budget was sent.")


class MemoryBatch(BaseModel):
    """The memories a write stored (admitted ones active, merged ones archived with ``merged_into``), in input
    order, and what admission decided for every input item, in input order (rejected items store nothing)."""

    memories: list[MemoryOut]
    admission: list[AdmissionItem] = Field(default_factory=list)
    forgotten: list[uuid.UUID] = Field(
        default_factory=list, description="messages: the memories a forget request in them archived or purged "
        "(earlier messages of the same call and the session summaries written from them included).")
    forget_flagged: StaleDerived | None = Field(
        default=None, description="messages: derived caches and adapters that may still hold what was forgotten.")
    forget_request_id: uuid.UUID | None = Field(
        default=None, description="messages: the forget request they made, if any (see /forget-requests).")
    routing: Routing | None = Field(default=None, description="The extraction tier and its cost, with a budget.")
    llm: LLMReport | None = Field(
        default=None, description="What the write's LLM steps did (forget-request classifier, supersession judge, "
        "extraction).")


class ExportedMemory(BaseModel):
    """One line of an export: the memory (without ids that are local to a deployment) and its versions."""

    type: str
    memory: MemoryOut
    versions: list[MemoryVersionOut]


class ArchivedOut(ExportedMemory):
    """A line of ``memories.jsonl`` as written: an export line plus the derived state that makes an imported
    cube search exactly like the original (its vector, enrichment, and when it was enriched)."""

    embedding: str
    enrichment: dict[str, Any]
    enriched_at: datetime | None
