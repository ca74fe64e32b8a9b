"""Forget requests: what a detected "forget my address" did, and its reversal."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

ForgetPolicy = Literal["archive", "purge"]


class StaleDerived(BaseModel):
    """What a forget request could not rewrite and may still hold the forgotten text: delete or rebuild these."""

    activations: list[uuid.UUID] = Field(
        default_factory=list, description="Activation caches (KV) whose prefix holds a forgotten memory.")
    adapters: list[uuid.UUID] = Field(
        default_factory=list, description="Adapters distilled from the cube since a forgotten memory was written.")


class ForgetRequestOut(BaseModel):
    """The request as stored: its subject (never the forgotten content) and the memories it archived or purged."""

    id: uuid.UUID
    cube_id: uuid.UUID
    subject: str
    detector: Literal["rules", "llm"]
    policy: ForgetPolicy
    status: Literal["applied", "reverted", "purged"]
    memory_ids: list[uuid.UUID]
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    reverted_at: datetime | None


class ForgetRequestList(BaseModel):
    forget_requests: list[ForgetRequestOut]
