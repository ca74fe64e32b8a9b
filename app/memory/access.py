"""Loading a cube or a memory for a caller: missing, deleted, another tenant's or outside a scoped key's grant
are all the same 404, and a weaker key than the action needs is a 403. Every use case goes through here."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Cube, Memory
from app.principal import Principal
from app.repositories import cubes
from app.repositories import memories as repo


def require_cube(s: Session, tenant_id: uuid.UUID, cube_id: uuid.UUID, *, lock: bool = False) -> Cube:
    cube = cubes.live_cube(s, tenant_id, cube_id, lock=lock)
    if cube is None:
        raise NotFound("cube", cube_id)
    return cube


def require_memory(s: Session, principal: Principal, memory_id: uuid.UUID, need: str, *,
                   lock: bool = False) -> Memory:
    """The caller's memory (of a live cube), once its key may ``need`` on that memory's cube."""
    m = repo.live_memory(s, principal.require_tenant(), memory_id, lock=lock)
    if m is None:
        raise NotFound("memory", memory_id)
    principal.require_object(m.cube_id, need, "memory", memory_id)
    return m
