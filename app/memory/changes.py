"""The versioned change every writer makes to a memory (a use case, a job, a batch change): the prior state as a
version with the reason, the change, version + 1, and an audit row naming who or which job asked."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from app.memory.records import snapshot
from app.models import Memory
from app.models.base import utcnow
from app.repositories import audit
from app.repositories import memories as repo


def versioned_change(s: Session, m: Memory, *, reason: str, action: str, job_id: uuid.UUID | None,
                     mutate: Callable[[Memory], None], details: dict[str, Any] | None = None,
                     key_id: uuid.UUID | None = None) -> None:
    """The path of ``MemoryService._change`` for a job (or another batch change, with the key that asked): the
    prior state as a version with the reason, the change, version + 1, and an audit row naming the job. The caller
    syncs the derived indexes after the commit."""
    repo.add_version(s, m, snapshot(m), reason[:200], key_id)
    mutate(m)
    m.version += 1
    m.updated_at = utcnow()
    job = {"job_id": str(job_id)} if job_id is not None else {}
    audit.record(s, tenant_id=m.tenant_id, key_id=key_id, action=action, object_type="memory", object_id=m.id,
                 details={"version": m.version, "reason": reason, **job, **(details or {})})
