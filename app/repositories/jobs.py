"""Jobs, cube policies, and the memory queries of consolidation, forgetting and purge."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from app.models import Cube, CubePolicy, Job, Memory
from app.models.base import utcnow

UNFINISHED = ("queued", "running")


def add_job(s: Session, *, tenant_id: uuid.UUID, cube_id: uuid.UUID, kind: str, trigger: str,
            params: dict[str, Any], max_attempts: int) -> Job:
    now = utcnow()
    job = Job(tenant_id=tenant_id, cube_id=cube_id, kind=kind, status="queued", trigger=trigger, attempts=0,
              max_attempts=max_attempts, progress=0.0, params=params, result={}, created_at=now, updated_at=now)
    s.add(job)
    s.flush()
    return job


def get_job(s: Session, job_id: uuid.UUID, *, lock: bool = False) -> Job | None:
    stmt = select(Job).where(Job.id == job_id)
    if lock:
        stmt = stmt.with_for_update()
    return s.scalar(stmt)


def tenant_job(s: Session, tenant_id: uuid.UUID, job_id: uuid.UUID, *, lock: bool = False) -> Job | None:
    stmt = select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id)
    if lock:
        stmt = stmt.with_for_update()
    return s.scalar(stmt)


def list_jobs(s: Session, tenant_id: uuid.UUID, cube_ids: Collection[uuid.UUID] | None, status: str | None,
              kind: str | None, limit: int) -> list[Job]:
    """The tenant's jobs, only those on ``cube_ids`` when given (one cube, or a scoped key's grant)."""
    stmt = select(Job).where(Job.tenant_id == tenant_id)
    if cube_ids is not None:
        stmt = stmt.where(Job.cube_id.in_(list(cube_ids)))
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    return list(s.scalars(stmt.order_by(Job.created_at.desc(), Job.id).limit(limit)))


def unfinished_job(s: Session, cube_id: uuid.UUID, kind: str, params: dict[str, Any]) -> Job | None:
    """A queued job of this kind and parameters on the cube: asking again returns it instead of a second one."""
    stmt = select(Job).where(Job.cube_id == cube_id, Job.kind == kind, Job.status == "queued",
                             Job.params == params)
    return s.scalar(stmt.order_by(Job.created_at).limit(1))


def unfinished_jobs(s: Session, older_than: datetime | None = None) -> list[uuid.UUID]:
    stmt = select(Job.id).where(Job.status.in_(UNFINISHED))
    if older_than is not None:
        stmt = stmt.where(Job.updated_at < older_than)
    return list(s.scalars(stmt.order_by(Job.created_at)))


def set_progress(s: Session, job_id: uuid.UUID, progress: float) -> None:
    s.execute(update(Job).where(Job.id == job_id).values(progress=progress, updated_at=utcnow()))


def cube_lock_key(cube_id: uuid.UUID) -> int:
    digest = hashlib.sha256(f"memcubed-job-cube:{cube_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def try_cube_lock(conn: Connection, cube_id: uuid.UUID) -> bool:
    """Session-level advisory lock on the cube: held by this connection until released or the process dies."""
    return bool(conn.scalar(select(func.pg_try_advisory_lock(cube_lock_key(cube_id)))))


def release_cube_lock(conn: Connection, cube_id: uuid.UUID) -> None:
    conn.scalar(select(func.pg_advisory_unlock(cube_lock_key(cube_id))))


# -- policies ----------------------------------------------------------------------------------------------
def get_policy(s: Session, cube_id: uuid.UUID) -> CubePolicy | None:
    return s.get(CubePolicy, cube_id)


def put_policy(s: Session, tenant_id: uuid.UUID, cube_id: uuid.UUID, fields: dict[str, Any]) -> CubePolicy:
    policy = s.get(CubePolicy, cube_id, with_for_update=True)
    if policy is None:
        policy = CubePolicy(cube_id=cube_id, tenant_id=tenant_id)
        s.add(policy)
    for name, value in fields.items():
        setattr(policy, name, value)
    policy.updated_at = utcnow()
    s.flush()
    return policy


# -- memories ----------------------------------------------------------------------------------------------
def live_cubes(s: Session) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(tenant_id, cube_id) of every live cube, for the schedule."""
    return [(t, c) for t, c in s.execute(select(Cube.tenant_id, Cube.id).where(Cube.status != "deleted"))]


def cube_tenant(s: Session, cube_id: uuid.UUID) -> uuid.UUID | None:
    return s.scalar(select(Cube.tenant_id).where(Cube.id == cube_id, Cube.status != "deleted"))


def active_memories(s: Session, cube_id: uuid.UUID) -> list[Memory]:
    stmt = (select(Memory).where(Memory.cube_id == cube_id, Memory.status == "active", Memory.kind == "plaintext")
            .order_by(Memory.vec_id))
    return list(s.scalars(stmt))


def lock_memory(s: Session, memory_id: uuid.UUID) -> Memory | None:
    return s.scalar(select(Memory).where(Memory.id == memory_id).with_for_update())


def lock_free(s: Session, memory_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Lock these memories in a fixed order, skipping rows another transaction holds; returns the locked ids."""
    if not memory_ids:
        return []
    stmt = (select(Memory.id).where(Memory.id.in_(list(memory_ids))).order_by(Memory.vec_id)
            .with_for_update(skip_locked=True))
    return list(s.scalars(stmt))


def active_by_hashes(s: Session, cube_id: uuid.UUID, hashes: Sequence[str]) -> dict[str, Memory]:
    """The oldest active memory of the cube for each content hash."""
    if not hashes:
        return {}
    stmt = (select(Memory).where(Memory.cube_id == cube_id, Memory.status == "active",
                                 Memory.content_hash.in_(list(set(hashes))))
            .order_by(Memory.vec_id))
    out: dict[str, Memory] = {}
    for m in s.scalars(stmt):
        out.setdefault(m.content_hash, m)
    return out


def summarised_sessions(s: Session, cube_id: uuid.UUID) -> set[str]:
    """Sessions that already have a summary (any status): a summary is written once per session."""
    stmt = select(Memory.source["session_id"].astext).where(
        Memory.cube_id == cube_id, Memory.source["type"].astext == "summary")
    return {sid for sid in s.scalars(stmt) if sid}


def purgeable(s: Session, cube_id: uuid.UUID, statuses: Sequence[str], before: datetime | None) -> list[Memory]:
    stmt = select(Memory).where(Memory.cube_id == cube_id, Memory.status.in_(list(statuses)))
    if before is not None:
        stmt = stmt.where(Memory.updated_at < before)
    return list(s.scalars(stmt.with_for_update()))


def hard_delete(s: Session, memory_ids: Sequence[uuid.UUID]) -> int:
    """Destroy rows (versions, entity links and edges cascade; merged_into/superseded_by pointers become null)."""
    if not memory_ids:
        return 0
    result = cast(CursorResult[Any], s.execute(delete(Memory).where(Memory.id.in_(list(memory_ids)))))
    return int(result.rowcount or 0)


def add_feedback(s: Session, memory: Memory, signal: str) -> None:
    column = {"useful": "useful_count", "not_useful": "not_useful_count", "wrong": "wrong_count"}[signal]
    setattr(memory, column, getattr(memory, column) + 1)
    s.flush()


def memories_by_vec_ids(s: Session, cube_id: uuid.UUID, vec_ids: Sequence[int]) -> list[Memory]:
    """Active memories of the cube with these vector ids."""
    if not vec_ids:
        return []
    return list(s.scalars(select(Memory).where(Memory.cube_id == cube_id, Memory.vec_id.in_(list(vec_ids)),
                                               Memory.status == "active")))
