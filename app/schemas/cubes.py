"""MemCube requests and responses."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import Text
from app.schemas.forget_requests import ForgetPolicy


class CubeCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    description: Text | None = Field(default=None, max_length=10_000)
    owner_id: Text | None = Field(default=None, max_length=200)


class CubeOut(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    description: str | None
    owner_id: str | None
    status: str
    memory_count: int
    forget_policy: str = Field(default="archive", description="What a forget request does: archive or purge.")
    enrichment_pending: int = Field(
        default=0, description="Memories not yet enriched (fine-retrieval indexes, entities, graph edges)."
    )
    created_at: datetime
    updated_at: datetime


class CubePatch(BaseModel):
    """The cube settings that change after creation; each needs an admin key for the cube."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=200,
                              description="A new name; unique among the tenant's live cubes (409 when taken).")
    forget_policy: ForgetPolicy | None = Field(
        default=None, description="archive: a forget request archives (revertible); purge: it destroys.")


class CubeList(BaseModel):
    cubes: list[CubeOut]


class ImportResult(BaseModel):
    imported: int
    id_map: dict[str, str]
