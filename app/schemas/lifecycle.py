"""Cube lifecycle requests and responses (archive import, fork, snapshots, restore, merge, fuse), and the rows
of the archive's JSON Lines files as they are read back."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.schemas.activation import PREFIX_MAX_CHARS
from app.schemas.adapters import DistillRequest
from app.schemas.common import Text, UtcDatetime
from app.schemas.cubes import CubeOut
from app.schemas.forget_requests import ForgetPolicy
from app.schemas.jobs import JobOut, PolicyIn
from app.schemas.memories import INT32, Feedback, ImportedMemory, ImportLine

# -- requests ------------------------------------------------------------------------------------------------


class ForkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=200,
                              description="Name of the new cube; default '<name>-fork-<6 hex>'.")
    description: Text | None = Field(default=None, max_length=10_000)


class SnapshotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Text | None = Field(default=None, max_length=200)


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_cube_id: uuid.UUID


PARAMETRIC = frozenset({"name", "memory_filter", "steps", "rank", "learning_rate"})


class FuseRequest(BaseModel):
    """``activation``: a KV cache of the cube's most important memories within ``max_tokens``;
    ``parametric``: a distilled LoRA adapter, with the options of ``POST /v1/cubes/{id}/adapters/distill``
    (checked by its own request model). Both run as jobs."""

    model_config = ConfigDict(extra="forbid")

    into: Literal["activation", "parametric"]
    max_tokens: int | None = Field(default=None, ge=16, le=32768,
                                   description="activation: token budget of the prefix (default the server's).")
    name: str | None = Field(default=None, description="parametric: adapter name.")
    memory_filter: dict[str, Any] | None = Field(default=None, description="parametric: which memories to distil.")
    steps: int | None = Field(default=None, description="parametric: optimiser steps.")
    rank: int | None = Field(default=None, description="parametric: LoRA rank.")
    learning_rate: float | None = Field(default=None, description="parametric: learning rate.")

    @model_validator(mode="after")
    def _options_of_target(self) -> FuseRequest:
        parametric = PARAMETRIC & self.model_fields_set
        if self.into == "activation" and parametric:
            raise ValueError(f"{sorted(parametric)} apply to into='parametric' only")
        if self.into == "parametric":
            if "max_tokens" in self.model_fields_set:
                raise ValueError("max_tokens applies to into='activation' only")
            try:
                self.distill_request()
            except ValidationError as exc:
                raise ValueError(f"invalid distill options: {exc.errors(include_url=False)}") from exc
        return self

    def distill_request(self) -> DistillRequest:
        return DistillRequest.model_validate(self.model_dump(include=set(PARAMETRIC), exclude_none=True))


# -- responses -----------------------------------------------------------------------------------------------


class ArchiveCounts(BaseModel):
    memories: int = 0
    versions: int = 0
    edges: int = 0
    entities: int = 0
    activations: int = 0
    adapters: int = 0


class ArchiveImportResult(BaseModel):
    cube: CubeOut
    counts: ArchiveCounts
    activations_stale: int = Field(
        description="Activation caches of another model (or without their file): kept as 'stale', rebuilt on "
                    "demand by POST /v1/cubes/{cube_id}/activations with their text.")
    embeddings: Literal["reused", "recomputed"] = Field(
        description="reused: the archive's vectors (same embedding model); recomputed: re-embedded here.")


class SnapshotOut(BaseModel):
    id: uuid.UUID
    cube_id: uuid.UUID
    label: str | None
    kind: str = Field(description="manual, or pre_restore (taken automatically before a restore).")
    memory_count: int
    size_bytes: int
    sha256: str
    created_at: datetime


class SnapshotList(BaseModel):
    snapshots: list[SnapshotOut]


class RestoreResult(BaseModel):
    snapshot_id: uuid.UUID
    pre_restore_snapshot_id: uuid.UUID = Field(description="Restore this one to undo the restore.")
    changed: int = Field(description="Memories given a new version with the snapshot's state.")
    recreated: int = Field(description="Memories of the snapshot no longer in the cube, written back.")
    archived: int = Field(description="Active memories not in the snapshot, archived (restorable).")
    unchanged: int


class MergeResult(BaseModel):
    from_cube_id: uuid.UUID
    considered: int = Field(description="Active memories of the source cube.")
    admitted: int
    merged: int = Field(description="Duplicates of memories already here: stored archived with merged_into.")
    rejected: int


class FuseResult(BaseModel):
    into: str
    job: JobOut


# -- archive rows (read side) -------------------------------------------------------------------------------


class ManifestCube(BaseModel):
    """The cube header of a manifest, checked like a cube create: a forged header is a 422, not a 500."""

    name: Text = Field(min_length=1, max_length=200)
    description: Text | None = Field(default=None, max_length=10_000)
    owner_id: Text | None = Field(default=None, max_length=200)
    provenance: dict[str, Any] = Field(default_factory=dict)
    forget_policy: ForgetPolicy = "archive"
    policy: PolicyIn | None = None


class ManifestHeader(BaseModel):
    cube: ManifestCube
    source: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None


class ArchivedMemory(ImportedMemory):
    merged_into: uuid.UUID | None = None
    superseded_by: uuid.UUID | None = None
    tier: Literal["short", "mid", "long"] = "short"
    heat: float = Field(default=0.0, ge=0.0)
    feedback: Feedback = Field(default_factory=Feedback)


class ArchiveLine(ImportLine):
    """A line of ``memories.jsonl``: an export line plus what the graph and the fine indexes derive from."""

    memory: ArchivedMemory
    embedding: str | None = Field(default=None, description="base64 of the float32 vector")
    enrichment: dict[str, Any] = Field(default_factory=dict)
    enriched_at: UtcDatetime | None = None


class EdgeLine(BaseModel):
    source_id: uuid.UUID
    target_id: uuid.UUID
    type: Text = Field(max_length=32)
    weight: float


class EntityLine(BaseModel):
    key: Text = Field(min_length=1, max_length=200)
    name: Text = Field(min_length=1, max_length=200)
    kind: Text = Field(max_length=32)
    mentions: int = Field(ge=0, le=INT32)
    memory_ids: list[uuid.UUID]


class ActivationLine(BaseModel):
    id: uuid.UUID
    model_id: Text = Field(max_length=200)
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    token_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    tokens: int = Field(ge=1, le=INT32)
    token_ids: str = Field(description="base64 of little-endian int32 ids")
    source: Text = Field(max_length=16)
    prefix_text: Text = Field(max_length=PREFIX_MAX_CHARS)
    precision: Text = Field(max_length=16)
    hits: int = Field(ge=0, le=INT32)
    created_at: UtcDatetime
    file: str | None = Field(default=None, description="archive member holding the KV tensors, if any")


class AdapterLine(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    version: int = Field(ge=1, le=INT32)
    base_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    base_model: Text = Field(max_length=200)
    rank: int = Field(ge=1, le=INT32)
    alpha: int = Field(ge=0, le=INT32)
    target_modules: list[Text]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: UtcDatetime
