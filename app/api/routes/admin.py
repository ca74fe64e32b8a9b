"""Admin routes: tenants, their API keys and quotas."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.api.deps import C, IdemKey, P
from app.schemas.admin import (
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyRevoked,
    TenantCreate,
    TenantCreated,
    TenantList,
)
from app.schemas.quotas import QuotaOverrides, TenantQuotas
from app.services.base import Idempotency

router = APIRouter(prefix="/v1", tags=["admin"])


@router.post("/tenants", status_code=201, response_model=TenantCreated)
def create_tenant(body: TenantCreate, c: C, p: P, idem: IdemKey = None) -> TenantCreated:
    return c.auth.create_tenant(p, body.name, Idempotency.of(idem, "tenant", body.model_dump()))


@router.get("/tenants", response_model=TenantList)
def list_tenants(c: C, p: P) -> TenantList:
    return TenantList(tenants=c.auth.list_tenants(p))


@router.post("/tenants/{tenant_id}/keys", status_code=201, response_model=KeyCreated)
def create_key(tenant_id: uuid.UUID, c: C, p: P, body: KeyCreate | None = None, idem: IdemKey = None) -> KeyCreated:
    req = body or KeyCreate()
    return c.auth.create_key(p, tenant_id, req,
                             Idempotency.of(idem, "key", str(tenant_id), req.model_dump(mode="json")))


@router.get("/tenants/{tenant_id}/keys", response_model=KeyList)
def list_keys(tenant_id: uuid.UUID, c: C, p: P) -> KeyList:
    return KeyList(keys=c.auth.list_keys(p, tenant_id))


@router.delete("/keys/{key_id}", response_model=KeyRevoked)
def revoke_key(key_id: uuid.UUID, c: C, p: P) -> KeyRevoked:
    return c.auth.revoke_key(p, key_id)


@router.get("/tenants/{tenant_id}/quotas", response_model=TenantQuotas)
def get_quotas(tenant_id: uuid.UUID, c: C, p: P) -> TenantQuotas:
    """Limits and current usage: for an admin key, or the tenant's own unscoped admin-permission key."""
    return c.quotas.get(p, tenant_id)


@router.put("/tenants/{tenant_id}/quotas", response_model=TenantQuotas)
def set_quotas(tenant_id: uuid.UUID, body: QuotaOverrides, c: C, p: P) -> TenantQuotas:
    """Replace the tenant's overrides (admin key only); a quota left out goes back to its default."""
    return c.quotas.set(p, tenant_id, body)
