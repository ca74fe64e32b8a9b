"""Memories, their versions, and the queries the index needs to stay derived from Postgres."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Select, and_, delete, func, or_, select, tuple_, update
from sqlalchemy.orm import Session

from app.models import Cube, Edge, Memory, MemoryVersion


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
    speaker: str | None = None

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
        if self.speaker is not None:
            stmt = stmt.where(Memory.meta["speaker"].astext == self.speaker)
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


# The sort keys of a memory listing, by order (see list_page).
PAGE_KEYS: dict[str, tuple[Any, ...]] = {
    "created": (Memory.created_at, Memory.id),
    "event": (func.coalesce(Memory.occurred_at, Memory.created_at), Memory.created_at, Memory.id),
}


def list_page(s: Session, cube_id: uuid.UUID, flt: MemoryFilter, limit: int, after: tuple[Any, ...] | None,
              order: str = "created") -> list[Memory]:
    """Keyset pagination, stable under concurrent inserts: on (created_at, id), or for ``order="event"`` on
    (event time, created_at, id) where the event time is occurred_at, else created_at. ``after`` is the last
    row's key (see ``page_key``)."""
    key = PAGE_KEYS[order]
    stmt = flt.apply(select(Memory).where(Memory.cube_id == cube_id))
    if after is not None:
        stmt = stmt.where(tuple_(*key) > tuple_(*after))
    return list(s.scalars(stmt.order_by(*key).limit(limit)))


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


def active_by_vec_ids(s: Session, vec_ids: Sequence[int], *, cube_id: uuid.UUID | None = None,
                      lock: bool = False) -> dict[int, Memory]:
    """Active memories by vector id (of one cube when given; locked for update when they will change)."""
    if not vec_ids:
        return {}
    stmt = select(Memory).where(Memory.vec_id.in_(list(vec_ids)), Memory.status == "active")
    if cube_id is not None:
        stmt = stmt.where(Memory.cube_id == cube_id)
    if lock:
        stmt = stmt.with_for_update().order_by(Memory.vec_id)
    return {m.vec_id: m for m in s.scalars(stmt)}

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


def _active_where(s: Session, cube_id: uuid.UUID, condition: ColumnElement[bool], limit: int) -> list[Memory]:
    """The cube's active memories that meet ``condition``, oldest first."""
    stmt = (select(Memory).where(Memory.cube_id == cube_id, Memory.status == "active", condition)
            .order_by(Memory.created_at, Memory.id).limit(limit))
    return list(s.scalars(stmt))


def active_containing(s: Session, cube_id: uuid.UUID, words: Sequence[str], limit: int) -> list[Memory]:
    """Active memories whose content has every word (at a word start, any ending: "address" finds
    "addresses"; words of three letters or fewer whole: "ex" is not "excited")."""
    if not words:
        return []
    return _active_where(s, cube_id, and_(*(
        Memory.content.regexp_match(r"\m" + re.escape(w) + (r"\M" if len(w) <= 3 else ""), flags="i")
        for w in words)), limit)


def active_holding(s: Session, cube_id: uuid.UUID, values: Sequence[str], limit: int) -> list[Memory]:
    """Active memories whose content holds any of the literal values (case-insensitive)."""
    if not values:
        return []
    return _active_where(s, cube_id, or_(*(Memory.content.icontains(v, autoescape=True) for v in values)), limit)


def active_matching(s: Session, cube_id: uuid.UUID, patterns: Sequence[str], limit: int) -> list[Memory]:
    """Active memories whose content matches any of the (case-insensitive, Postgres) regexes."""
    if not patterns:
        return []
    return _active_where(s, cube_id, or_(*(Memory.content.regexp_match(p, flags="i") for p in patterns)), limit)


def derived_from(s: Session, memory_ids: Sequence[uuid.UUID]) -> list[Memory]:
    """Active memories written from these (session summaries, by their ``derived_from`` edges)."""
    if not memory_ids:
        return []
    stmt = (select(Memory).join(Edge, Edge.source_id == Memory.id)
            .where(Edge.type == "derived_from", Edge.target_id.in_(list(memory_ids)), Memory.status == "active"))
    return list({m.id: m for m in s.scalars(stmt)}.values())


def memories_locked(s: Session, memory_ids: Sequence[uuid.UUID]) -> list[Memory]:
    """The memories, locked for update in vec_id order (the order every writer locks in, so none deadlock)."""
    if not memory_ids:
        return []
    stmt = (select(Memory).where(Memory.id.in_(list(memory_ids))).order_by(Memory.vec_id).with_for_update()
            .execution_options(populate_existing=True))  # rows read earlier in this session: their state now
    return list(s.scalars(stmt))


def session_neighbours(s: Session, cube_id: uuid.UUID, session_id: str) -> list[Memory]:
    """A session's active memories in event order (occurred_at, then arrival)."""
    stmt = (
        select(Memory)
        .where(Memory.cube_id == cube_id, Memory.session_id == session_id, Memory.status == "active")
        .order_by(Memory.occurred_at.nulls_last(), Memory.created_at, Memory.vec_id)
    )
    return list(s.scalars(stmt))


def unenriched(s: Session, cube_id: uuid.UUID, limit: int) -> list[Memory]:
    stmt = (
        select(Memory)
        .join(Cube, Cube.id == Memory.cube_id)
        .where(Memory.cube_id == cube_id, Memory.enriched_at.is_(None), Memory.status == "active",
               Cube.status != "deleted")
        .order_by(Memory.vec_id)
        .limit(limit)
        .with_for_update(of=Memory, skip_locked=True)
    )
    return list(s.scalars(stmt))


def cubes_with_unenriched(s: Session) -> list[uuid.UUID]:
    stmt = select(Memory.cube_id).where(Memory.enriched_at.is_(None), Memory.status == "active").distinct()
    return list(s.scalars(stmt))


def count_unenriched(s: Session, cube_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not cube_ids:
        return {}
    rows = s.execute(
        select(Memory.cube_id, func.count())
        .where(Memory.cube_id.in_(cube_ids), Memory.enriched_at.is_(None), Memory.status == "active")
        .group_by(Memory.cube_id)
    )
    return {c: int(n) for c, n in rows}


def mark_enriched(s: Session, memory_id: uuid.UUID, enrichment: dict[str, Any], at: datetime) -> None:
    s.execute(update(Memory).where(Memory.id == memory_id).values(enrichment=enrichment, enriched_at=at))


def memories_by_ids(s: Session, ids: Sequence[uuid.UUID]) -> list[Memory]:
    if not ids:
        return []
    return list(s.scalars(select(Memory).where(Memory.id.in_(ids))))


def cube_totals(s: Session, cube_ids: Sequence[uuid.UUID]) -> tuple[int, int, int]:
    """(active memories, their characters, distinct sessions) across the cubes: one aggregate query."""
    row = s.execute(
        select(func.count(), func.coalesce(func.sum(func.length(Memory.content)), 0),
               func.count(func.distinct(Memory.session_id)))
        .where(Memory.cube_id.in_(cube_ids), Memory.status == "active")
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def active_in_event_order(s: Session, cube_ids: Sequence[uuid.UUID]) -> list[Memory]:
    """Every active memory of the cubes in event-time order (undated ones last, by arrival)."""
    stmt = (select(Memory).where(Memory.cube_id.in_(cube_ids), Memory.status == "active")
            .order_by(Memory.occurred_at.nulls_last(), Memory.created_at, Memory.vec_id))
    return list(s.scalars(stmt))


def last_changed(s: Session, cube_id: uuid.UUID) -> datetime | None:
    return s.scalar(select(func.max(Memory.updated_at)).where(Memory.cube_id == cube_id))


def set_heat(s: Session, heats: dict[uuid.UUID, float]) -> None:
    s.execute(update(Memory), [{"id": i, "heat": h} for i, h in heats.items()])


def active_contents(s: Session, cube_id: uuid.UUID, flt: MemoryFilter) -> list[str]:
    """The cube's plaintext memories that match ``flt``, oldest first (what a distillation trains on)."""
    stmt = flt.apply(select(Memory.content).where(Memory.cube_id == cube_id, Memory.kind == "plaintext"))
    return list(s.scalars(stmt.order_by(Memory.created_at, Memory.id)))


def active_in_span(s: Session, cube_id: uuid.UUID, start: datetime, end: datetime) -> list[int]:
    """Vector ids of the cube's active memories whose event time falls in [start, end)."""
    stmt = select(Memory.vec_id).where(Memory.cube_id == cube_id, Memory.status == "active",
                                       Memory.occurred_at >= start, Memory.occurred_at < end)
    return list(s.scalars(stmt))


def types_of(s: Session, vec_ids: Sequence[int]) -> dict[int, str]:
    rows = s.execute(select(Memory.vec_id, Memory.memory_type).where(Memory.vec_id.in_(list(vec_ids))))
    return {int(vec_id): str(kind) for vec_id, kind in rows}


def embeddings_of(s: Session, cube_id: uuid.UUID, vec_ids: Sequence[int]) -> list[tuple[int, bytes]]:
    """(vec_id, embedding) of the cube's active memories among ``vec_ids``."""
    rows = s.execute(select(Memory.vec_id, Memory.embedding).where(
        Memory.vec_id.in_(list(vec_ids)), Memory.status == "active", Memory.cube_id == cube_id)).all()
    return [(int(v), bytes(e)) for v, e in rows]


def superseded_by(s: Session, memory_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Memory]]:
    """The memories each of these superseded, newest first."""
    out: dict[uuid.UUID, list[Memory]] = {m: [] for m in memory_ids}
    if not memory_ids:
        return out
    stmt = (select(Memory).where(Memory.superseded_by.in_(list(memory_ids)))
            .order_by(Memory.occurred_at.desc().nulls_last(), Memory.created_at.desc()))
    for m in s.scalars(stmt):
        assert m.superseded_by is not None
        out[m.superseded_by].append(m)
    return out
