"""Per-tenant quotas: the check every write that grows a stock makes inside its own transaction, and the admin
use cases (read limits and usage, set overrides).

A check locks the tenant's quota (an advisory lock held to the end of the transaction), counts in SQL, and
refuses with ``QuotaExceeded`` before anything is written, so a refused batch writes nothing and two concurrent
writers cannot both take the last slot."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import NotFound, PayloadTooLarge, QuotaExceeded
from app.principal import Principal
from app.repositories import audit, tenants
from app.repositories import quotas as repo
from app.schemas.quotas import QUOTA_NAMES, QuotaName, QuotaOut, QuotaOverrides, RequestLimits, TenantQuotas
from app.services.base import Transactor, Tx


def defaults(settings: Settings) -> dict[QuotaName, int]:
    return {"memories": settings.quota_memories, "cubes": settings.quota_cubes,
            "snapshots": settings.quota_snapshots, "adapter_bytes": settings.quota_adapter_bytes,
            "activation_bytes": settings.quota_activation_bytes}


def reserve(s: Session, settings: Settings, tenant_id: uuid.UUID, quota: QuotaName, requested: int) -> None:
    """Refuse (403 ``quota_exceeded``) when ``requested`` more would take the tenant past ``quota``. Called inside
    the write's transaction, before the write: the lock it takes is held until that commits."""
    if requested <= 0:
        return
    repo.lock(s, tenant_id, quota)
    tenant = tenants.get_tenant(s, tenant_id)
    limit = int((tenant.quotas if tenant is not None else {}).get(quota, defaults(settings)[quota]))
    used = repo.used(s, tenant_id, quota)
    if used + requested > limit:
        raise QuotaExceeded(quota, limit, used, requested)


def check_context_tokens(settings: Settings, requested: int | None) -> None:
    """A per-request size: one context may not ask for more tokens than the service allows (413)."""
    limit = settings.quota_context_tokens
    if requested is not None and requested > limit:
        raise PayloadTooLarge(f"max_tokens is {requested}; the limit is {limit}",
                              {"quota": "context_tokens", "limit": limit, "requested": requested})


class QuotaService:
    """Reading a tenant's quotas (its admin, or the service admin) and overriding them (the service admin)."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], tx: Transactor) -> None:
        self.settings = settings
        self.sessions = sessions
        self.tx = tx

    def get(self, principal: Principal, tenant_id: uuid.UUID) -> TenantQuotas:
        principal.require_tenant_admin(tenant_id)
        with self.sessions() as s:
            return self._out(s, tenant_id)

    def set(self, principal: Principal, tenant_id: uuid.UUID, body: QuotaOverrides) -> TenantQuotas:
        principal.require_admin()
        overrides = body.model_dump(exclude_none=True)

        def work(tx: Tx) -> TenantQuotas:
            tenant = tenants.get_tenant(tx.session, tenant_id)
            if tenant is None:
                raise NotFound("tenant", tenant_id)
            tenant.quotas = overrides
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="tenant.quotas",
                         object_type="tenant", object_id=tenant_id, details={"quotas": overrides})
            tx.session.flush()
            return self._out(tx.session, tenant_id)

        return self.tx.run(principal, None, TenantQuotas, work)

    def _out(self, s: Session, tenant_id: uuid.UUID) -> TenantQuotas:
        tenant = tenants.get_tenant(s, tenant_id)
        if tenant is None:
            raise NotFound("tenant", tenant_id)
        limits = defaults(self.settings)
        return TenantQuotas(
            tenant_id=tenant_id,
            quotas=[QuotaOut(name=name, limit=int(tenant.quotas.get(name, limits[name])),
                             used=repo.used(s, tenant_id, name), default=limits[name],
                             overridden=name in tenant.quotas) for name in QUOTA_NAMES],
            request_limits=RequestLimits(import_bytes=self.settings.max_import_bytes,
                                         context_tokens=self.settings.quota_context_tokens))
