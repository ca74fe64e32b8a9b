"""Audit log and idempotency records."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import AuditLog, IdempotencyRecord


def record(s: Session, *, tenant_id: uuid.UUID | None, key_id: uuid.UUID | None, action: str,
           object_type: str, object_id: object, details: dict[str, Any] | None = None) -> None:
    s.add(AuditLog(tenant_id=tenant_id, key_id=key_id, action=action, object_type=object_type,
                   object_id=str(object_id), details=details or {}))


def entries(s: Session, tenant_id: uuid.UUID | None) -> list[AuditLog]:
    return list(s.scalars(select(AuditLog).where(AuditLog.tenant_id == tenant_id).order_by(AuditLog.id)))


def idempotent_result(s: Session, key_id: uuid.UUID, idem_key: str) -> IdempotencyRecord | None:
    return s.scalar(
        select(IdempotencyRecord).where(IdempotencyRecord.key_id == key_id, IdempotencyRecord.idem_key == idem_key)
    )


def save_idempotent_result(s: Session, *, key_id: uuid.UUID, idem_key: str, request_hash: str,
                           response: Any) -> None:
    s.add(IdempotencyRecord(key_id=key_id, idem_key=idem_key, request_hash=request_hash, response=response))
    s.flush()
