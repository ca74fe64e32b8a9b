"""Audit log and idempotency records."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sqlalchemy import func, select
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


def idempotent_result(s: Session, key_id: uuid.UUID, idem_key: str) -> IdempotencyRecord | None:
    return s.scalar(
        select(IdempotencyRecord).where(IdempotencyRecord.key_id == key_id, IdempotencyRecord.idem_key == idem_key)
    )


def save_idempotent_result(s: Session, *, key_id: uuid.UUID, idem_key: str, request_hash: str,
                           response: Any) -> None:
    s.add(IdempotencyRecord(key_id=key_id, idem_key=idem_key, request_hash=request_hash, response=response))
    s.flush()
