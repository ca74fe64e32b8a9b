"""Adapters: the rows that say which LoRA adapter exists, in which version, for which base model."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Adapter


def add(s: Session, row: Adapter) -> Adapter:
    s.add(row)
    s.flush()
    return row


def next_version(s: Session, cube_id: uuid.UUID, name: str) -> int:
    """One more than any version of this name in the cube, deleted ones included: versions are never reused."""
    latest = s.scalar(select(func.max(Adapter.version)).where(Adapter.cube_id == cube_id, Adapter.name == name))
    return int(latest or 0) + 1


def for_tenant(s: Session, tenant_id: uuid.UUID, adapter_id: uuid.UUID, *, lock: bool = False) -> Adapter | None:
    stmt = select(Adapter).where(Adapter.id == adapter_id, Adapter.tenant_id == tenant_id)
    if lock:
        stmt = stmt.with_for_update()
    return s.scalar(stmt)


def many_for_tenant(s: Session, tenant_id: uuid.UUID, adapter_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Adapter]:
    stmt = select(Adapter).where(Adapter.tenant_id == tenant_id, Adapter.id.in_(list(adapter_ids)))
    return {row.id: row for row in s.scalars(stmt)}


def in_cube(s: Session, cube_id: uuid.UUID, include_deleted: bool) -> list[Adapter]:
    stmt = select(Adapter).where(Adapter.cube_id == cube_id)
    if not include_deleted:
        stmt = stmt.where(Adapter.status == "active")
    return list(s.scalars(stmt.order_by(Adapter.name, Adapter.version)))
