"""What a tenant holds of each quota'd stock, counted in SQL, and the lock that makes check-then-write safe."""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.models import Activation, Adapter, Cube, Memory, Snapshot


def lock(s: Session, tenant_id: uuid.UUID, quota: str) -> None:
    """Serialise the writes that grow one stock of one tenant until this transaction ends: a writer counts
    only after the previous one committed, so two cannot both take the last slot. One lock per quota, so
    memory writes do not wait on a cube being created."""
    digest = hashlib.sha256(f"quota:{tenant_id}:{quota}".encode()).digest()
    s.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest[:8], "big", signed=True))))


def _in_live_cubes(column: InstrumentedAttribute[uuid.UUID], tenant_id: uuid.UUID) -> ColumnElement[bool]:
    """Rows of a deleted cube no longer count: deleting a cube frees its share."""
    return column.in_(select(Cube.id).where(Cube.tenant_id == tenant_id, Cube.status != "deleted"))


def used(s: Session, tenant_id: uuid.UUID, quota: str) -> int:
    """The tenant's current use of ``quota``: a count, or bytes."""
    if quota == "cubes":
        stmt = select(func.count()).select_from(Cube).where(Cube.tenant_id == tenant_id, Cube.status != "deleted")
    elif quota == "memories":
        stmt = select(func.count()).select_from(Memory).where(_in_live_cubes(Memory.cube_id, tenant_id),
                                                              Memory.status == "active")
    elif quota == "snapshots":
        stmt = select(func.count()).select_from(Snapshot).where(_in_live_cubes(Snapshot.cube_id, tenant_id))
    elif quota == "adapter_bytes":
        stmt = select(func.coalesce(func.sum(Adapter.size_bytes), 0)).where(
            _in_live_cubes(Adapter.cube_id, tenant_id), Adapter.status == "active")
    elif quota == "activation_bytes":
        stmt = select(func.coalesce(func.sum(Activation.nbytes), 0)).where(
            _in_live_cubes(Activation.cube_id, tenant_id), Activation.status == "active")
    else:
        raise ValueError(f"unknown quota {quota!r}")
    return int(s.scalar(stmt) or 0)
