"""Jobs, forgetting policy, feedback, purge and write admission: requests and responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobKind = Literal["consolidate", "forget", "distill", "fuse_activation"]
JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
AdmissionStatus = Literal["admitted", "merged", "rejected"]
FeedbackSignal = Literal["useful", "not_useful", "wrong"]


class Admission(BaseModel):
    """What write admission decided for one item of a write."""

    status: AdmissionStatus
    merged_into: uuid.UUID | None = Field(
        default=None, description="merged: the active memory (or earlier item of the batch) it duplicates.")
    similarity: float | None = Field(default=None, description="merged: cosine similarity to merged_into.")
    reason: str | None = Field(default=None, description="merged or rejected: why.")


class AdmissionItem(Admission):
    """One input item of a write, in input order; ``memory_id`` is null for a rejected item (nothing stored)."""

    index: int
    memory_id: uuid.UUID | None = None
    supersedes: list[uuid.UUID] = Field(
        default_factory=list, description="Older memories this one replaced: they stated another value of the same "
        "attribute (where someone lives, works, a number…) and are now archived with superseded_by.")


class JobOut(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    cube_id: uuid.UUID
    kind: str
    status: str
    trigger: str
    attempts: int
    max_attempts: int
    error: str | None
    progress: float = Field(description="0..1")
    params: dict[str, Any]
    result: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class JobList(BaseModel):
    jobs: list[JobOut]


class ConsolidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    forget: bool = Field(default=False, description="Also apply the cube's forgetting policy in the same job.")
    summaries: bool = Field(default=True, description="Write episodic → semantic session summaries.")


class PolicyIn(BaseModel):
    """A cube's forgetting policy. Forgetting archives (restorable); it never destroys."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Whether scheduled forgetting runs on this cube.")
    threshold: float = Field(default=0.2, ge=0.0, le=1.0,
                             description="Active memories whose retention score is below this are archived.")
    max_active: int | None = Field(default=None, ge=1, le=100_000_000,
                                   description="Keep at most this many active memories (highest retention).")
    ttl_days: float | None = Field(default=None, gt=0, le=36_500,
                                   description="Archive memories whose event time is older than this.")
    half_life_days: float = Field(default=30.0, gt=0, le=36_500, description="Age at which recency halves.")
    min_age_hours: float = Field(default=24.0, ge=0, le=876_000,
                                 description="Memories written more recently than this are never forgotten.")


class PolicyOut(PolicyIn):
    cube_id: uuid.UUID
    is_default: bool
    updated_at: datetime | None


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal: FeedbackSignal


class PurgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    statuses: list[Literal["archived", "deleted"]] = Field(default=["archived", "deleted"], min_length=1)
    older_than_days: float | None = Field(default=None, ge=0, le=36_500,
                                          description="Only memories last changed longer ago than this.")


class PurgeResult(BaseModel):
    purged: int
    memory_ids: list[uuid.UUID]
