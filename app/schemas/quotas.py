"""Per-tenant quotas: limits, usage and an admin's overrides."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

QuotaName = Literal["memories", "cubes", "snapshots", "adapter_bytes", "activation_bytes"]
QUOTA_NAMES: tuple[QuotaName, ...] = ("memories", "cubes", "snapshots", "adapter_bytes", "activation_bytes")
MAX_LIMIT = 2**62


class QuotaOut(BaseModel):
    name: QuotaName
    limit: int = Field(description="What the tenant may hold: the override if set, else the default.")
    used: int = Field(description="What it holds now (a count, or bytes for the *_bytes quotas).")
    default: int = Field(description="The service-wide default (MEMCUBED_QUOTA_<NAME>).")
    overridden: bool = Field(description="True when an admin set this tenant's limit.")


class RequestLimits(BaseModel):
    """Per-request sizes: the same for every tenant, refused with a 413."""

    import_bytes: int = Field(description="Largest import body (MEMCUBED_MAX_IMPORT_BYTES).")
    context_tokens: int = Field(description="Largest max_tokens of a context or answer request.")


class TenantQuotas(BaseModel):
    tenant_id: uuid.UUID
    quotas: list[QuotaOut]
    request_limits: RequestLimits


class QuotaOverrides(BaseModel):
    """The tenant's overrides, replacing the ones it had: a quota left out (or null) goes back to the default."""

    model_config = ConfigDict(extra="forbid")
    memories: int | None = Field(default=None, ge=0, le=MAX_LIMIT)
    cubes: int | None = Field(default=None, ge=0, le=MAX_LIMIT)
    snapshots: int | None = Field(default=None, ge=0, le=MAX_LIMIT)
    adapter_bytes: int | None = Field(default=None, ge=0, le=MAX_LIMIT)
    activation_bytes: int | None = Field(default=None, ge=0, le=MAX_LIMIT)
