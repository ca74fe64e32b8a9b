"""MemCube requests and responses."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from app.schemas.common import Text


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
    enrichment_pending: int = Field(
        default=0, description="Memories not yet enriched (fine-retrieval indexes, entities, graph edges)."
    )
    created_at: datetime
    updated_at: datetime


class CubeList(BaseModel):
    cubes: list[CubeOut]


class ImportResult(BaseModel):
    imported: int
    id_map: dict[str, str]
