"""Audit log and idempotency records."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.models import AuditLog, IdempotencyRecord


def record(s: Session, *, tenant_id: uuid.UUID | None, key_id: uuid.UUID | None, action: str,
           object_type: str, object_id: object, details: dict[str, Any] | None = None) -> None:
    s.add(AuditLog(tenant_id=tenant_id, key_id=key_id, action=action, object_type=object_type,
                   object_id=str(object_id), details=details or {}))


def lock_idempotency_key(s: Session, key_id: uuid.UUID, idem_key: str) -> None:
    """Serialise requests that share an Idempotency-Key until this transaction ends, so a concurrent retry
    waits for the first one and replays it instead of racing it."""
    digest = hashlib.sha256(f"{key_id}:{idem_key}".encode()).digest()
    s.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest[:8], "big", signed=True))))


def idempotent_result(s: Session, key_id: uuid.UUID, idem_key: str, since: datetime) -> IdempotencyRecord | None:
    return s.scalar(
        select(IdempotencyRecord).where(IdempotencyRecord.key_id == key_id, IdempotencyRecord.idem_key == idem_key,
                                        IdempotencyRecord.created_at >= since)
    )


def purge_idempotent_results(s: Session, before: datetime, batch: int = 1000) -> None:
    """Delete expired records; rows another transaction is deleting are skipped, so purges never wait or
    deadlock on each other."""
    doomed = (select(IdempotencyRecord.id).where(IdempotencyRecord.created_at < before).limit(batch)
              .with_for_update(skip_locked=True))
    s.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(doomed)))


def save_idempotent_result(s: Session, *, key_id: uuid.UUID, idem_key: str, request_hash: str,
                           response: Any) -> None:
    s.add(IdempotencyRecord(key_id=key_id, idem_key=idem_key, request_hash=request_hash, response=response))
    s.flush()
