"""Memories, their versions, and the queries the index needs to stay derived from Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from app.models import Cube, Memory, MemoryVersion


@dataclass(frozen=True)
class MemoryFilter:
    """Conditions shared by listing and filtered search."""

    memory_type: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    tag: str | None = None
    status: str | None = None
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in self.__dict__.values())

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        for column, value in (
            (Memory.memory_type, self.memory_type),
            (Memory.user_id, self.user_id),
            (Memory.agent_id, self.agent_id),
            (Memory.session_id, self.session_id),
            (Memory.status, self.status),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if self.tag is not None:
            stmt = stmt.where(Memory.tags.contains([self.tag]))
        if self.occurred_after is not None:
            stmt = stmt.where(Memory.occurred_at >= self.occurred_after)
        if self.occurred_before is not None:
            stmt = stmt.where(Memory.occurred_at < self.occurred_before)
        return stmt


def add_memories(s: Session, rows: Sequence[Memory]) -> list[Memory]:
    s.add_all(rows)
    s.flush()
    return list(rows)


def live_memory(s: Session, tenant_id: uuid.UUID, memory_id: uuid.UUID, *, lock: bool = False) -> Memory | None:
    """A tenant's memory whose cube is not deleted; locked for update when it will change."""
    stmt = (
        select(Memory)
        .join(Cube, Cube.id == Memory.cube_id)
        .where(Memory.id == memory_id, Memory.tenant_id == tenant_id, Cube.status != "deleted")
    )
    if lock:
        stmt = stmt.with_for_update(of=Memory)
    return s.scalar(stmt)


def list_page(s: Session, cube_id: uuid.UUID, flt: MemoryFilter, limit: int,
              after: tuple[datetime, uuid.UUID] | None) -> list[Memory]:
    """Keyset pagination on (created_at, id): stable under concurrent inserts."""
    stmt = flt.apply(select(Memory).where(Memory.cube_id == cube_id))
    if after is not None:
        stmt = stmt.where((Memory.created_at, Memory.id) > after)  # type: ignore[operator]
    stmt = stmt.order_by(Memory.created_at, Memory.id).limit(limit)
    return list(s.scalars(stmt))


def all_in_cube(s: Session, cube_id: uuid.UUID) -> Iterator[Memory]:
    stmt = select(Memory).where(Memory.cube_id == cube_id).order_by(Memory.created_at, Memory.id)
    yield from s.scalars(stmt.execution_options(yield_per=500))


def add_version(s: Session, memory: Memory, snapshot: dict[str, Any], reason: str,
                actor_key_id: uuid.UUID | None) -> None:
    s.add(MemoryVersion(memory_id=memory.id, version=memory.version, snapshot=snapshot, reason=reason,
                        actor_key_id=actor_key_id))
    s.flush()


def versions_of(s: Session, memory_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[MemoryVersion]]:
    out: dict[uuid.UUID, list[MemoryVersion]] = {mid: [] for mid in memory_ids}
    if not memory_ids:
        return out
    stmt = select(MemoryVersion).where(MemoryVersion.memory_id.in_(memory_ids)).order_by(MemoryVersion.version)
    for version in s.scalars(stmt):
        out[version.memory_id].append(version)
    return out


def active_by_vec_ids(s: Session, vec_ids: Sequence[int]) -> dict[int, Memory]:
    if not vec_ids:
        return {}
    rows = s.scalars(select(Memory).where(Memory.vec_id.in_(vec_ids), Memory.status == "active"))
    return {m.vec_id: m for m in rows}


def filtered_vec_ids(s: Session, cube_id: uuid.UUID, flt: MemoryFilter) -> list[int]:
    stmt = flt.apply(select(Memory.vec_id).where(Memory.cube_id == cube_id, Memory.status == "active"))
    return list(s.scalars(stmt))


def touch(s: Session, memory_ids: Sequence[uuid.UUID], at: datetime) -> None:
    """Count a retrieval: feeds access heat for forgetting and tiering."""
    if memory_ids:
        # Lock in id order, so concurrent searches touching the same memories queue instead of deadlocking.
        locked = (select(Memory.id).where(Memory.id.in_(memory_ids)).order_by(Memory.id)
                  .with_for_update().scalar_subquery())
        s.execute(
            update(Memory)
            .where(Memory.id.in_(locked))
            .values(access_count=Memory.access_count + 1, last_accessed_at=at)
        )


def index_fingerprints(s: Session) -> dict[uuid.UUID, tuple[int, int]]:
    """(count, sum of vec_id) of active memories per live cube: what each index must hold."""
    rows = s.execute(
        select(Memory.cube_id, func.count(), func.coalesce(func.sum(Memory.vec_id), 0))
        .join(Cube, Cube.id == Memory.cube_id)
        .where(Memory.status == "active", Cube.status != "deleted")
        .group_by(Memory.cube_id)
    )
    return {cube_id: (int(n), int(total)) for cube_id, n, total in rows}


def active_embeddings(s: Session, cube_id: uuid.UUID) -> Iterator[tuple[int, bytes]]:
    stmt = select(Memory.vec_id, Memory.embedding).where(Memory.cube_id == cube_id, Memory.status == "active")
    for vec_id, emb in s.execute(stmt.execution_options(yield_per=2000)):
        yield int(vec_id), emb


def embedding_models(s: Session) -> list[tuple[str, int]]:
    return [(m, int(d)) for m, d in s.execute(select(Memory.embedding_model, Memory.embedding_dim).distinct())]


def add_imported_version(s: Session, memory_id: uuid.UUID, version: int, snapshot: dict[str, Any], reason: str,
                         created_at: datetime) -> None:
    s.add(MemoryVersion(memory_id=memory_id, version=version, snapshot=snapshot, reason=reason,
                        created_at=created_at))
