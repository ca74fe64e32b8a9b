"""Tenants and API keys (admin routes)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

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


class KeyCreate(BaseModel):
    name: Text | None = Field(default=None, max_length=200)


class KeyCreated(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    scope: str
    api_key: str
    created_at: datetime


class KeyRevoked(BaseModel):
    id: uuid.UUID
    revoked_at: datetime
