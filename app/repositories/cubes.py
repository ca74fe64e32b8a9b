"""MemCubes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Cube, Memory


def add_cube(s: Session, *, tenant_id: uuid.UUID, name: str, description: str | None,
             owner_id: str | None) -> Cube:
    cube = Cube(tenant_id=tenant_id, name=name, description=description, owner_id=owner_id, status="active")
    s.add(cube)
    s.flush()
    return cube


def live_cube(s: Session, tenant_id: uuid.UUID, cube_id: uuid.UUID, *, lock: bool = False) -> Cube | None:
    """A tenant's cube unless deleted; another tenant's cube is indistinguishable from none."""
    stmt = select(Cube).where(Cube.id == cube_id, Cube.tenant_id == tenant_id, Cube.status != "deleted")
    if lock:
        stmt = stmt.with_for_update()
    return s.scalar(stmt)


def live_cube_by_name(s: Session, tenant_id: uuid.UUID, name: str) -> Cube | None:
    return s.scalar(select(Cube).where(Cube.tenant_id == tenant_id, Cube.name == name, Cube.status != "deleted"))


def live_cube_ids(s: Session, tenant_id: uuid.UUID, cube_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    rows = s.scalars(
        select(Cube.id).where(Cube.id.in_(cube_ids), Cube.tenant_id == tenant_id, Cube.status != "deleted")
    )
    return set(rows)


def list_live_cubes(s: Session, tenant_id: uuid.UUID) -> list[Cube]:
    return list(
        s.scalars(
            select(Cube).where(Cube.tenant_id == tenant_id, Cube.status != "deleted").order_by(Cube.created_at, Cube.id)
        )
    )


def all_live_cube_ids(s: Session) -> list[uuid.UUID]:
    return list(s.scalars(select(Cube.id).where(Cube.status != "deleted")))


def memory_counts(s: Session, cube_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Non-deleted memories per cube."""
    if not cube_ids:
        return {}
    rows = s.execute(
        select(Memory.cube_id, func.count())
        .where(Memory.cube_id.in_(cube_ids), Memory.status != "deleted")
        .group_by(Memory.cube_id)
    )
    return {cube_id: int(n) for cube_id, n in rows}
