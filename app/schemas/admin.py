"""Tenants and API keys (admin routes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import Text


class ShownOnce(BaseModel):
    """A response that carries a new API key. The key is shown once, in the first response, and never stored
    (only its hash is): an idempotent replay of the request returns everything else, with the key withheld."""

    api_key: str | None = Field(description="The new API key, shown only in the first response to the request "
                                            "that created it; null when api_key_withheld is true.")
    api_key_withheld: bool = Field(
        default=False, description="True on an idempotent replay (same Idempotency-Key): the key was shown once "
                                   "and is not kept anywhere, so it cannot be shown again; revoke it by id and "
                                   "create another if it was lost.")

    def replay_record(self) -> dict[str, Any]:
        """What an idempotency record keeps of this response: all but the key."""
        return {**self.model_dump(mode="json"), "api_key": None, "api_key_withheld": True}


class TenantCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=200)


class TenantCreated(ShownOnce):
    id: uuid.UUID
    name: str
    key_id: uuid.UUID


class TenantOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime


class TenantList(BaseModel):
    tenants: list[TenantOut]


Permission = Literal["read", "write", "admin"]


class KeyCreate(BaseModel):
    """A tenant key; with ``cube_ids`` it sees only those cubes (sharing them with another agent), with
    ``permission`` read (GETs, search, generate) < write (content changes) < admin (deletes, purge, policy).
    Unknown fields are refused: a misspelt ``cube_ids`` must not mint a key for the whole tenant."""

    model_config = ConfigDict(extra="forbid")
    name: Text | None = Field(default=None, max_length=200)
    cube_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=1000)
    permission: Permission = "admin"


class KeyCreated(ShownOnce):
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    scope: str
    created_at: datetime
    cube_ids: list[uuid.UUID] | None = None
    permission: Permission = "admin"


class KeyOut(BaseModel):
    """A key as listed: what it may do and whether it still works; never the key or its hash."""

    id: uuid.UUID
    name: str | None
    cube_ids: list[uuid.UUID] | None
    permission: Permission
    created_at: datetime
    revoked_at: datetime | None


class KeyList(BaseModel):
    keys: list[KeyOut]


class KeyRevoked(BaseModel):
    id: uuid.UUID
    revoked_at: datetime


class WhoAmI(BaseModel):
    """What the calling key may do, so a client can show only what the API will allow."""

    key_id: uuid.UUID
    scope: str
    tenant_id: uuid.UUID | None
    cube_ids: list[uuid.UUID] | None
    permission: str = Field(description="read < write < admin")
