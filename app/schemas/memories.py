"""Memory, message and search requests and responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MemoryType = Literal["episodic", "semantic", "procedural"]
MemoryStatus = Literal["active", "archived", "deleted"]
Name = Field(default=None, max_length=200)


class MemoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1)
    memory_type: MemoryType = "episodic"
    user_id: str | None = Name
    agent_id: str | None = Name
    session_id: str | None = Name
    occurred_at: datetime | None = None
    tags: list[str] = Field(default_factory=list, max_length=100)
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
    occurred_at: datetime | None = None
    tags: list[str] | None = Field(default=None, max_length=100)
    metadata: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    importance: float | None = Field(default=None, ge=0.0, le=1.0)
    reason: str = Field(default="update", max_length=200)

    @model_validator(mode="after")
    def _something_to_change(self) -> MemoryPatch:
        if not (self.model_fields_set - {"reason"}):
            raise ValueError("PATCH needs at least one field to change")
        return self


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

    role: str = Field(min_length=1, max_length=50)
    speaker: str | None = Field(default=None, max_length=200)
    content: str = Field(min_length=1)
    timestamp: datetime | None = None
    id: str | None = Field(default=None, max_length=200)


class MessagesCreate(BaseModel):
    session_id: str = Field(min_length=1, max_length=200)
    user_id: str | None = Name
    agent_id: str | None = Name
    messages: list[MessageIn] = Field(min_length=1)


class SearchFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    memory_type: MemoryType | None = None
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    tag: str | None = None
    status: Literal["active"] | None = Field(
        default=None, description="Only active memories are searchable; archived and deleted ones are listed."
    )
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=8192)
    cube_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)
    top_k: int = Field(default=10, ge=1, le=200)
    filters: SearchFilters = Field(default_factory=SearchFilters)
    mode: Literal["fast"] = "fast"


class SearchHit(BaseModel):
    memory: MemoryOut
    score: float


class SearchResponse(BaseModel):
    results: list[SearchHit]
    took_ms: float
