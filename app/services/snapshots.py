"""Snapshots of a cube (plaintext and graph, kept in Postgres) and restore: nothing is destroyed, every change is
a new version, and a ``pre_restore`` snapshot taken first makes a restore undoable. Snapshots share the archive
format of ``app.services.lifecycle``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.errors import InvalidInput, NotFound
from app.lifecycle.archive import read_archive, sha256_hex
from app.memory.access import require_cube
from app.memory.changes import versioned_change
from app.memory.text import content_hash
from app.models import Cube, Memory, Snapshot
from app.principal import Principal
from app.repositories import audit
from app.repositories import memories as repo
from app.repositories import snapshots as snap_repo
from app.schemas.lifecycle import ArchiveLine, RestoreResult, SnapshotCreate, SnapshotList, SnapshotOut
from app.services.base import Idempotency, Transactor, Tx
from app.services.derived import DerivedIndexes
from app.services.lifecycle import LifecycleService
from app.services.memories import MemoryService
from app.services.quotas import reserve

# A memory's state that a restore puts back (everything a user or a job can change).
RESTORED = ("content", "memory_type", "user_id", "agent_id", "session_id", "occurred_at", "tags", "metadata",
            "source", "status", "importance", "merged_into", "superseded_by", "tier")


def snapshot_out(row: Snapshot) -> SnapshotOut:
    return SnapshotOut(id=row.id, cube_id=row.cube_id, label=row.label, kind=row.kind, memory_count=row.memory_count,
                       size_bytes=row.size_bytes, sha256=row.sha256, created_at=row.created_at)


def state_of(m: Memory) -> dict[str, Any]:
    """The restorable state of a row, comparable with ``line_state``."""
    return {"content": m.content, "memory_type": m.memory_type, "user_id": m.user_id, "agent_id": m.agent_id,
            "session_id": m.session_id, "occurred_at": m.occurred_at, "tags": list(m.tags or []),
            "metadata": m.meta or {}, "source": m.source or {}, "status": m.status, "importance": m.importance,
            "merged_into": m.merged_into, "superseded_by": m.superseded_by, "tier": m.tier or "short"}


def line_state(line: ArchiveLine) -> dict[str, Any]:
    src = line.memory
    return {name: getattr(src, name) for name in RESTORED}


def active_growth(current: dict[uuid.UUID, Memory], lines: Sequence[ArchiveLine]) -> int:
    """How many more active memories the cube has once restored to ``lines`` (negative: fewer): afterwards,
    exactly the snapshot's active memories are active."""
    return sum(ln.memory.status == "active" for ln in lines) - sum(m.status == "active" for m in current.values())


class SnapshotService:
    def __init__(self, sessions: sessionmaker[Session], tx: Transactor, memories: MemoryService,
                 indexes: DerivedIndexes, lifecycle: LifecycleService) -> None:
        self.sessions = sessions
        self.tx = tx
        self.memories = memories
        self.indexes = indexes
        self.lifecycle = lifecycle

    def create_snapshot(self, principal: Principal, cube_id: uuid.UUID, body: SnapshotCreate,
                        idem: Idempotency | None = None) -> SnapshotOut:
        tenant_id = principal.require_cube(cube_id, "write")

        def work(tx: Tx) -> SnapshotOut:
            cube = require_cube(tx.session, tenant_id, cube_id, lock=True)
            return snapshot_out(self._snapshot(tx.session, principal, cube, "manual", body.label))

        return self.tx.run(principal, idem, SnapshotOut, work)

    def _snapshot(self, s: Session, principal: Principal, cube: Cube, kind: str, label: str | None) -> Snapshot:
        reserve(s, self.lifecycle.settings, cube.tenant_id, "snapshots", 1)
        writer, header = self.lifecycle.collect(s, cube, with_files=False)
        payload = writer.to_bytes(header)
        row = snap_repo.add_snapshot(s, Snapshot(
            tenant_id=cube.tenant_id, cube_id=cube.id, label=label, kind=kind,
            memory_count=header["counts"]["memories"], size_bytes=len(payload), sha256=sha256_hex(payload),
            payload=payload, key_id=principal.key_id))
        audit.record(s, tenant_id=cube.tenant_id, key_id=principal.key_id, action="snapshot.create",
                     object_type="snapshot", object_id=row.id, details={"cube_id": str(cube.id), "kind": kind})
        return row

    def list_snapshots(self, principal: Principal, cube_id: uuid.UUID) -> SnapshotList:
        tenant_id = principal.require_cube(cube_id, "read")
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
            return SnapshotList(snapshots=[snapshot_out(r) for r in snap_repo.snapshots_of(s, cube_id)])

    def delete_snapshot(self, principal: Principal, cube_id: uuid.UUID, snapshot_id: uuid.UUID) -> None:
        """Destroy a snapshot (its archive goes with it), freeing its place in the tenant's snapshot quota."""
        tenant_id = principal.require_cube(cube_id, "write")

        def work(tx: Tx) -> SnapshotOut:
            require_cube(tx.session, tenant_id, cube_id)
            row = snap_repo.snapshot_in_cube(tx.session, cube_id, snapshot_id)
            if row is None:
                raise NotFound("snapshot", snapshot_id)
            out = snapshot_out(row)
            snap_repo.delete_snapshot(tx.session, row)
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="snapshot.delete",
                         object_type="snapshot", object_id=snapshot_id,
                         details={"cube_id": str(cube_id), "kind": out.kind, "label": out.label})
            return out

        self.tx.run(principal, None, SnapshotOut, work)

    def restore(self, principal: Principal, cube_id: uuid.UUID, snapshot_id: uuid.UUID) -> RestoreResult:
        """Bring the cube back to a snapshot without destroying anything: a memory whose state differs gets a
        new version with the snapshot's state, one missing (purged) is written back, and an active one that
        the snapshot does not have is archived. A ``pre_restore`` snapshot is taken first: restoring it undoes
        this restore."""
        tenant_id = principal.require_cube(cube_id, "admin")
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
            row = snap_repo.snapshot_in_cube(s, cube_id, snapshot_id)
            if row is None:
                raise NotFound("snapshot", snapshot_id)
            payload = row.payload
        plan = self.lifecycle.plan(read_archive(payload))
        if not plan.reused:
            raise InvalidInput("the snapshot's embeddings are of another model; import it as a new cube instead",
                               {"snapshot_id": str(snapshot_id)})

        def work(tx: Tx) -> RestoreResult:
            s = tx.session
            cube = require_cube(s, tenant_id, cube_id, lock=True)
            pre = self._snapshot(s, principal, cube, "pre_restore", f"before restoring {snapshot_id}")
            result = RestoreResult(snapshot_id=snapshot_id, pre_restore_snapshot_id=pre.id, changed=0, recreated=0,
                                   archived=0, unchanged=0)
            current = {m.id: m for m in repo.all_in_cube(s, cube_id)}
            reserve(s, self.lifecycle.settings, tenant_id, "memories", active_growth(current, plan.lines))
            reason = f"restore snapshot {snapshot_id}"
            index_add: list[tuple[int, np.ndarray]] = []
            index_remove: list[int] = []
            recreated: list[Memory] = []
            for ln, vec in zip(plan.lines, plan.vecs):
                m = current.get(ln.memory.id)
                if m is None:
                    m = self.memories.imported_row(tenant_id, cube_id, ln.memory, vec)
                    m.id, m.tier = ln.memory.id, ln.memory.tier
                    recreated.append(m)
                    continue
                if state_of(m) == line_state(ln):
                    result.unchanged += 1
                    continue
                self._put_back(s, principal, m, ln, vec, reason, index_add, index_remove)
                result.changed += 1
            repo.add_memories(s, recreated)
            by_id = {ln.memory.id: ln for ln in plan.lines}
            known = set(current) | {m.id for m in recreated}
            for m in recreated:  # after the insert: links to rows of the same batch
                src = by_id[m.id].memory
                m.merged_into = src.merged_into if src.merged_into in known else None
                m.superseded_by = src.superseded_by if src.superseded_by in known else None
                for v in by_id[m.id].versions:
                    repo.add_imported_version(s, m.id, v.version, v.snapshot, v.reason, v.created_at)
                if m.status == "active":
                    index_add.append((m.vec_id, np.frombuffer(m.embedding, dtype=np.float32)))
            result.recreated = len(recreated)
            for m in current.values():
                if m.id not in by_id and m.status == "active":
                    self._archive_one(s, principal, m, f"{reason}: not in the snapshot")
                    index_remove.append(m.vec_id)
                    result.archived += 1
            self.lifecycle.write_graph(s, tenant_id, cube_id, plan, {i: i for i in known})
            audit.record(s, tenant_id=tenant_id, key_id=principal.key_id, action="snapshot.restore",
                         object_type="cube", object_id=cube_id, details=result.model_dump(mode="json"))
            tx.after_commit.append(lambda: self._sync_indexes(cube_id, index_add, index_remove))
            return result

        return self.tx.run(principal, None, RestoreResult, work)

    @staticmethod
    def _put_back(s: Session, principal: Principal, m: Memory, ln: ArchiveLine, vec: np.ndarray, reason: str,
                  index_add: list[tuple[int, np.ndarray]], index_remove: list[int]) -> None:
        """One memory back to the snapshot's state, as a new version."""
        was_active, old_embedding = m.status == "active", m.embedding

        def mutate(row: Memory) -> None:
            for name, value in line_state(ln).items():
                setattr(row, "meta" if name == "metadata" else name, value)
            row.content_hash = content_hash(row.content)
            row.embedding = vec.tobytes()

        versioned_change(s, m, reason=reason, action="memory.restore_snapshot", job_id=None, mutate=mutate,
                         key_id=principal.key_id)
        if m.status == "active" and (not was_active or m.embedding != old_embedding):
            m.enriched_at = None  # new text, or back from archive: indexed and enriched again
            index_add.append((m.vec_id, vec))
        elif was_active and m.status != "active":
            index_remove.append(m.vec_id)

    @staticmethod
    def _archive_one(s: Session, principal: Principal, m: Memory, reason: str) -> None:
        def mutate(row: Memory) -> None:
            row.status = "archived"

        versioned_change(s, m, reason=reason, action="memory.restore_snapshot", job_id=None, mutate=mutate,
                         key_id=principal.key_id)

    def _sync_indexes(self, cube_id: uuid.UUID, add: list[tuple[int, np.ndarray]], remove: list[int]) -> None:
        if remove:
            self.indexes.remove(cube_id, remove)
        if add:
            self.indexes.add(cube_id, [a[0] for a in add], np.stack([a[1] for a in add]))

