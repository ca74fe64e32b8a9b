"""Jobs, cube policies, and the memory queries of consolidation, forgetting and purge."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from app.models import Cube, CubePolicy, Job
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


def last_done_start(s: Session, cube_id: uuid.UUID, kind: str) -> datetime | None:
    """When the cube's last finished job of ``kind`` started."""
    return s.scalar(select(func.max(Job.started_at)).where(Job.cube_id == cube_id, Job.kind == kind,
                                                           Job.status == "done"))
