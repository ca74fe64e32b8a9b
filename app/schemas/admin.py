"""Tenants and API keys (admin routes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import Text


class TenantCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=200)


class TenantCreated(BaseModel):
    id: uuid.UUID
    name: str
    api_key: str
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


class KeyCreated(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    scope: str
    api_key: str
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
