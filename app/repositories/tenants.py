"""Tenants and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import ApiKey, Tenant


def add_tenant(s: Session, name: str) -> Tenant:
    tenant = Tenant(name=name)
    s.add(tenant)
    s.flush()
    return tenant


def get_tenant(s: Session, tenant_id: uuid.UUID) -> Tenant | None:
    return s.get(Tenant, tenant_id)


def tenant_by_name(s: Session, name: str) -> Tenant | None:
    return s.scalar(select(Tenant).where(Tenant.name == name))


def list_tenants(s: Session) -> list[Tenant]:
    return list(s.scalars(select(Tenant).order_by(Tenant.created_at, Tenant.id)))


def add_key(s: Session, *, tenant_id: uuid.UUID | None, scope: str, key_hash: str, prefix: str,
            name: str | None, cube_ids: list[uuid.UUID] | None = None, permission: str = "admin") -> ApiKey:
    key = ApiKey(tenant_id=tenant_id, scope=scope, key_hash=key_hash, prefix=prefix, name=name,
                 cube_ids=cube_ids, permission=permission)
    s.add(key)
    s.flush()
    return key


def lock_admin_keys(s: Session) -> None:
    """Serialise admin-key bootstrap and rotation across processes until this transaction ends."""
    s.execute(select(func.pg_advisory_xact_lock(func.hashtext("memcubed:admin-keys"))))


def key_by_hash(s: Session, key_hash: str) -> ApiKey | None:
    return s.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


def get_key(s: Session, key_id: uuid.UUID) -> ApiKey | None:
    return s.get(ApiKey, key_id)


def live_admin_keys(s: Session) -> list[ApiKey]:
    return list(s.scalars(select(ApiKey).where(ApiKey.scope == "admin", ApiKey.revoked_at.is_(None))))


def list_keys(s: Session, tenant_id: uuid.UUID) -> list[ApiKey]:
    return list(s.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at, ApiKey.id)))


def revoke_key(s: Session, key: ApiKey, at: datetime) -> None:
    key.revoked_at = at
    s.flush()
