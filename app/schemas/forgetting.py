"""The forgetting policy's preview: what it would archive now (read-only)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from app.schemas.jobs import PolicyOut
from app.schemas.memories import MemoryOut


class PreviewItem(BaseModel):
    memory: MemoryOut
    retention: float = Field(description="The memory's retention score now (0..1).")
    reason: str = Field(description="Why the policy would archive it (TTL, threshold or max_active).")


class PolicyPreview(BaseModel):
    """Lowest retention first. ``total`` counts every memory the policy would archive; ``memories`` lists the
    first ``limit`` of them. A preview changes nothing."""

    cube_id: uuid.UUID
    policy: PolicyOut
    active: int = Field(description="Active memories in the cube.")
    considered: int = Field(description="Active memories old enough (min_age_hours) to be forgotten.")
    total: int
    memories: list[PreviewItem]
