"""Forgetting: a retention score per memory and a per-cube policy. Forgetting archives (restorable with
``POST /v1/memories/{id}/restore``); only an explicit purge destroys, and a purge is audited.

retention = 0.3·recency + 0.35·heat + 0.2·importance + 0.15·feedback, each in 0..1:
- recency: ``0.5 ** (age / half_life)``, age from the memory's event time (occurred_at, else created_at);
- heat: MemoryOS heat (visits, length in content words, recency of the last visit), see ``consolidation``;
- importance: the memory's own importance;
- feedback: 0.5 + 0.25·useful - 0.25·not_useful - 0.5·wrong, clamped.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.memory.access import require_cube, require_memory
from app.memory.changes import versioned_change
from app.memory.records import heat_of, memory_out, when
from app.models import CubePolicy, Memory
from app.models.base import utcnow
from app.principal import Principal
from app.repositories import audit
from app.repositories import jobs as jobs_repo
from app.repositories import memories as repo
from app.schemas.forgetting import PolicyPreview, PreviewItem
from app.schemas.jobs import PolicyIn, PolicyOut, PurgeRequest, PurgeResult
from app.schemas.memories import MemoryOut
from app.services.base import Transactor, Tx
from app.services.derived import DerivedIndexes
from app.services.jobs import IDS_CAP, JobRun

BATCH = 100


def feedback_term(m: Memory) -> float:
    value = 0.5 + 0.25 * (m.useful_count or 0) - 0.25 * (m.not_useful_count or 0) - 0.5 * (m.wrong_count or 0)
    return max(0.0, min(1.0, value))


def retention(m: Memory, policy: PolicyIn, now: Any) -> float:
    age_days = max(0.0, (now - when(m)).total_seconds() / 86400)
    recency = 0.5 ** (age_days / policy.half_life_days)
    return round(0.3 * recency + 0.35 * heat_of(m, now, policy.half_life_days) + 0.2 * (m.importance or 0.0)
                 + 0.15 * feedback_term(m), 4)


def policy_of(row: CubePolicy | None) -> PolicyIn:
    if row is None:
        return PolicyIn()
    return PolicyIn(enabled=row.enabled, threshold=row.threshold, max_active=row.max_active, ttl_days=row.ttl_days,
                    half_life_days=row.half_life_days, min_age_hours=row.min_age_hours)


def policy_out(cube_id: uuid.UUID, row: CubePolicy | None) -> PolicyOut:
    return PolicyOut(cube_id=cube_id, is_default=row is None, updated_at=row.updated_at if row else None,
                     **policy_of(row).model_dump())


def choose(mems: list[Memory], policy: PolicyIn, now: datetime) -> tuple[list[tuple[float, Memory, str]], int]:
    """What ``policy`` lets go of among the active ``mems`` (retention, memory, reason), and how many were old
    enough to be considered. Pure: the forgetting job and its preview both use it."""
    grace = now - timedelta(hours=policy.min_age_hours)
    scored = sorted(((retention(m, policy, now), m) for m in mems), key=lambda x: (x[0], x[1].vec_id))
    eligible = [(r, m) for r, m in scored if m.created_at <= grace]
    chosen: dict[uuid.UUID, tuple[float, Memory, str]] = {}
    for r, m in eligible:
        if policy.ttl_days is not None and (now - when(m)).total_seconds() > policy.ttl_days * 86400:
            chosen[m.id] = (r, m, f"forgotten: older than the cube's TTL of {policy.ttl_days:g} days")
        elif r < policy.threshold:
            chosen[m.id] = (r, m, f"forgotten: retention {r:.3f} below the cube's threshold {policy.threshold:g}")
    if policy.max_active is not None:
        excess = len(mems) - len(chosen) - policy.max_active
        for r, m in eligible:
            if excess <= 0:
                break
            if m.id not in chosen:
                chosen[m.id] = (r, m, f"forgotten: retention {r:.3f} among the lowest over the cube's "
                                      f"max_active of {policy.max_active}")
                excess -= 1
    return list(chosen.values()), len(eligible)


def forget(run: JobRun) -> dict[str, Any]:
    """The forgetting step of a job: archive what the policy lets go, lowest retention first."""
    now = utcnow()
    with run.sessions() as s:
        policy = policy_of(jobs_repo.get_policy(s, run.cube_id))
        mems = repo.active_memories(s, run.cube_id)
        s.expunge_all()
    if not policy.enabled and run.kind != "forget":
        return {"skipped": "policy disabled"}
    items, considered = choose(mems, policy, now)
    archived: list[uuid.UUID] = []
    batch = run.batch(BATCH)
    for start in range(0, len(items), batch):
        removed: list[int] = []
        with run.sessions.begin() as s:
            for r, seen, reason in items[start : start + batch]:
                row = repo.lock_memory(s, seen.id)
                if row is None or row.status != "active" or row.version != seen.version:
                    continue
                versioned_change(s, row, reason=reason, action="memory.forget", job_id=run.job_id,
                                 mutate=lambda mem: setattr(mem, "status", "archived"),
                                 details={"retention": r})
                removed.append(row.vec_id)
                archived.append(row.id)
                run.pace()
        if removed:
            run.sink.remove(run.cube_id, removed)
    return {"archived": len(archived), "considered": considered, "policy": policy.model_dump(),
            "archived_ids": [str(i) for i in archived[:IDS_CAP]]}


class ForgettingService:
    """API use cases: the policy, feedback, hard delete and purge."""

    def __init__(self, sessions: sessionmaker[Session], tx: Transactor, indexes: DerivedIndexes) -> None:
        self.sessions = sessions
        self.tx = tx
        self.indexes = indexes

    def get_policy(self, principal: Principal, cube_id: uuid.UUID) -> PolicyOut:
        tenant_id = principal.require_cube(cube_id, "read")
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
            return policy_out(cube_id, jobs_repo.get_policy(s, cube_id))

    def preview(self, principal: Principal, cube_id: uuid.UUID, limit: int) -> PolicyPreview:
        """What applying the policy now (``POST /forget``) would archive, scored as the job scores; read-only."""
        tenant_id = principal.require_cube(cube_id, "read")
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
            row = jobs_repo.get_policy(s, cube_id)
            mems = repo.active_memories(s, cube_id)
            items, considered = choose(mems, policy_of(row), utcnow())
            items.sort(key=lambda x: (x[0], x[1].vec_id))
            return PolicyPreview(cube_id=cube_id, policy=policy_out(cube_id, row), active=len(mems),
                                 considered=considered, total=len(items),
                                 memories=[PreviewItem(memory=memory_out(m), retention=r, reason=reason)
                                           for r, m, reason in items[:limit]])

    def put_policy(self, principal: Principal, cube_id: uuid.UUID, body: PolicyIn) -> PolicyOut:
        tenant_id = principal.require_cube(cube_id, "admin")

        def work(tx: Tx) -> PolicyOut:
            require_cube(tx.session, tenant_id, cube_id)
            row = jobs_repo.put_policy(tx.session, tenant_id, cube_id, body.model_dump())
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="cube.policy",
                         object_type="cube", object_id=cube_id, details=body.model_dump())
            return policy_out(cube_id, row)

        return self.tx.run(principal, None, PolicyOut, work)

    def feedback(self, principal: Principal, memory_id: uuid.UUID, signal: str) -> MemoryOut:
        tenant_id = principal.require_tenant()

        def work(tx: Tx) -> MemoryOut:
            m = require_memory(tx.session, principal, memory_id, "write", lock=True)
            repo.add_feedback(tx.session, m, signal)
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="memory.feedback",
                         object_type="memory", object_id=m.id, details={"signal": signal})
            return memory_out(m)

        return self.tx.run(principal, None, MemoryOut, work)

    def hard_delete(self, principal: Principal, memory_id: uuid.UUID) -> MemoryOut:
        """Destroy one memory and its versions; the audit log keeps who, when, and the content hash."""
        tenant_id = principal.require_tenant()

        def work(tx: Tx) -> MemoryOut:
            m = require_memory(tx.session, principal, memory_id, "admin", lock=True)
            out = memory_out(m)
            cube_id, vec_id, was_active = m.cube_id, m.vec_id, m.status == "active"
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="memory.purge",
                         object_type="memory", object_id=m.id,
                         details={"version": m.version, "status": m.status, "content_hash": m.content_hash,
                                  "cube_id": str(cube_id)})
            tx.session.expunge(m)
            repo.hard_delete(tx.session, [memory_id])
            if was_active:
                tx.after_commit.append(lambda: self.indexes.remove(cube_id, [vec_id]))
            return out

        return self.tx.run(principal, None, MemoryOut, work)

    def purge(self, principal: Principal, cube_id: uuid.UUID, body: PurgeRequest) -> PurgeResult:
        """Destroy a cube's archived and/or deleted memories (never active ones), audited with every id."""
        tenant_id = principal.require_cube(cube_id, "admin")
        before = utcnow() - timedelta(days=body.older_than_days) if body.older_than_days is not None else None

        def work(tx: Tx) -> PurgeResult:
            require_cube(tx.session, tenant_id, cube_id)
            rows = repo.purgeable(tx.session, cube_id, body.statuses, before)
            ids = [m.id for m in rows]
            for m in rows:
                tx.session.expunge(m)
            repo.hard_delete(tx.session, ids)
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="cube.purge",
                         object_type="cube", object_id=cube_id,
                         details={"count": len(ids), "statuses": list(body.statuses),
                                  "older_than_days": body.older_than_days, "memory_ids": [str(i) for i in ids]})
            return PurgeResult(purged=len(ids), memory_ids=ids)

        return self.tx.run(principal, None, PurgeResult, work)
