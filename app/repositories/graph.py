"""Entities, memory-entity links and edges."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.models import Cube, Edge, Entity, Memory, MemoryEntity


def upsert_entities(s: Session, tenant_id: uuid.UUID, cube_id: uuid.UUID, names: Sequence[str]) -> dict[str, uuid.UUID]:
    """Entity ids by lower-cased key; counts each mention."""
    if not names:
        return {}
    by_key = {n.lower(): n for n in names}
    stmt = insert(Entity).values([
        {"id": uuid.uuid4(), "tenant_id": tenant_id, "cube_id": cube_id, "key": k, "name": n, "kind": "name",
         "mentions": 1}
        for k, n in by_key.items()
    ])
    stmt = stmt.on_conflict_do_update(index_elements=["cube_id", "key"],
                                      set_={"mentions": Entity.mentions + 1})
    rows = s.execute(stmt.returning(Entity.key, Entity.id))
    return {key: eid for key, eid in rows}


def link_entities(s: Session, memory_id: uuid.UUID, entity_ids: Sequence[uuid.UUID]) -> None:
    if entity_ids:
        s.execute(insert(MemoryEntity).values([{"memory_id": memory_id, "entity_id": e} for e in entity_ids])
                  .on_conflict_do_nothing())


def add_edges(s: Session, cube_id: uuid.UUID, edges: Sequence[tuple[uuid.UUID, uuid.UUID, str, float]]) -> int:
    if not edges:
        return 0
    unique = {(a, b, t): w for a, b, t, w in edges if a != b}
    if not unique:
        return 0
    stmt = insert(Edge).values([
        {"id": uuid.uuid4(), "cube_id": cube_id, "source_id": a, "target_id": b, "type": t, "weight": w}
        for (a, b, t), w in unique.items()
    ]).on_conflict_do_nothing()
    result = cast(CursorResult[Any], s.execute(stmt))
    return int(result.rowcount or 0)


def sharing_entities(s: Session, entity_ids: Sequence[uuid.UUID], exclude: uuid.UUID,
                     per_entity: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(memory_id, entity_id) for the most recent other memories naming each entity."""
    out: list[tuple[uuid.UUID, uuid.UUID]] = []
    for entity_id in entity_ids:
        stmt = (
            select(MemoryEntity.memory_id)
            .join(Memory, Memory.id == MemoryEntity.memory_id)
            .where(MemoryEntity.entity_id == entity_id, MemoryEntity.memory_id != exclude, Memory.status == "active")
            .order_by(Memory.vec_id.desc())
            .limit(per_entity)
        )
        out.extend((mid, entity_id) for mid in s.scalars(stmt))
    return out


def edges_of(s: Session, memory_id: uuid.UUID) -> list[Edge]:
    stmt = select(Edge).where(or_(Edge.source_id == memory_id, Edge.target_id == memory_id)).order_by(
        Edge.type, Edge.weight.desc(), Edge.id)
    return list(s.scalars(stmt))


def cube_edges(s: Session, cube_id: uuid.UUID, types: Sequence[str] | None = None) -> list[tuple[int, int, str, float]]:
    """Edges as (source vec_id, target vec_id, type, weight) between active memories, for traversal."""
    src = Memory.__table__.alias("src")
    dst = Memory.__table__.alias("dst")
    stmt = (
        select(src.c.vec_id, dst.c.vec_id, Edge.type, Edge.weight)
        .join(src, src.c.id == Edge.source_id)
        .join(dst, dst.c.id == Edge.target_id)
        .where(Edge.cube_id == cube_id, src.c.status == "active", dst.c.status == "active")
    )
    if types:
        stmt = stmt.where(Edge.type.in_(types))
    return [(int(a), int(b), str(t), float(w)) for a, b, t, w in s.execute(stmt)]


def edges_page(s: Session, cube_id: uuid.UUID, types: Sequence[str] | None, limit: int,
               after: uuid.UUID | None) -> list[Edge]:
    stmt = select(Edge).where(Edge.cube_id == cube_id)
    if types:
        stmt = stmt.where(Edge.type.in_(types))
    if after is not None:
        stmt = stmt.where(Edge.id > after)
    return list(s.scalars(stmt.order_by(Edge.id).limit(limit)))


def entities_page(s: Session, cube_id: uuid.UUID, limit: int, after: uuid.UUID | None,
                  query: str | None) -> list[Entity]:
    live = (select(MemoryEntity.memory_id).join(Memory, Memory.id == MemoryEntity.memory_id)
            .where(MemoryEntity.entity_id == Entity.id, Memory.status == "active").exists())
    # An entity only archived or forgotten memories name is not shown: what was forgotten stays out of sight.
    stmt = select(Entity).where(Entity.cube_id == cube_id, live)
    if query:
        stmt = stmt.where(Entity.key.contains(query.lower()))
    if after is not None:
        stmt = stmt.where(Entity.id > after)
    return list(s.scalars(stmt.order_by(Entity.id).limit(limit)))


def entity_names_of(s: Session, memory_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    out: dict[uuid.UUID, list[str]] = {m: [] for m in memory_ids}
    if not memory_ids:
        return out
    stmt = (select(MemoryEntity.memory_id, Entity.name).join(Entity, Entity.id == MemoryEntity.entity_id)
            .where(MemoryEntity.memory_id.in_(memory_ids)))
    for mid, name in s.execute(stmt):
        out[mid].append(name)
    return out


def enriched_vec_ids(s: Session) -> dict[uuid.UUID, set[int]]:
    """vec_ids of active, enriched memories per live cube: what each fine index must hold."""
    stmt = (
        select(Memory.cube_id, Memory.vec_id)
        .join(Cube, Cube.id == Memory.cube_id)
        .where(Memory.status == "active", Memory.enriched_at.is_not(None), Cube.status != "deleted")
    )
    out: dict[uuid.UUID, set[int]] = {}
    for cube_id, vec_id in s.execute(stmt):
        out.setdefault(cube_id, set()).add(int(vec_id))
    return out
