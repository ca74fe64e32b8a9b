"""Snapshots, and the bulk reads and writes of a cube's graph, activations and adapters that archive, import,
fork and restore need (the per-row paths in ``graph`` and ``activations`` count mentions or enforce one live
cache per prefix, which a copy must not)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, defer

from app.models import Activation, Adapter, Edge, Entity, Memory, MemoryEntity, Snapshot

CHUNK = 5000  # rows per INSERT: a statement holds at most 65,535 parameters


def add_snapshot(s: Session, row: Snapshot) -> Snapshot:
    s.add(row)
    s.flush()
    return row


def snapshots_of(s: Session, cube_id: uuid.UUID) -> list[Snapshot]:
    """Newest first, without their payloads: listing does not read archives."""
    return list(s.scalars(select(Snapshot).options(defer(Snapshot.payload)).where(Snapshot.cube_id == cube_id)
                          .order_by(Snapshot.created_at.desc(), Snapshot.id)))


def snapshot_in_cube(s: Session, cube_id: uuid.UUID, snapshot_id: uuid.UUID) -> Snapshot | None:
    return s.scalar(select(Snapshot).where(Snapshot.id == snapshot_id, Snapshot.cube_id == cube_id))


def delete_snapshot(s: Session, row: Snapshot) -> None:
    s.delete(row)
    s.flush()


def edges_in_cube(s: Session, cube_id: uuid.UUID) -> list[Edge]:
    return list(s.scalars(select(Edge).where(Edge.cube_id == cube_id).order_by(Edge.id)))


def entities_in_cube(s: Session, cube_id: uuid.UUID) -> list[tuple[Entity, list[uuid.UUID]]]:
    """Each entity with the ids of the memories linked to it."""
    entities = list(s.scalars(select(Entity).where(Entity.cube_id == cube_id).order_by(Entity.key)))
    links: dict[uuid.UUID, list[uuid.UUID]] = {e.id: [] for e in entities}
    if entities:
        stmt = (select(MemoryEntity.entity_id, MemoryEntity.memory_id)
                .where(MemoryEntity.entity_id.in_(list(links))).order_by(MemoryEntity.memory_id))
        for entity_id, memory_id in s.execute(stmt):
            links[entity_id].append(memory_id)
    return [(e, links[e.id]) for e in entities]


def add_entities(s: Session, tenant_id: uuid.UUID, cube_id: uuid.UUID,
                 rows: Sequence[tuple[str, str, str, int, Sequence[uuid.UUID]]]) -> None:
    """(key, name, kind, mentions, memory ids): entities the cube lacks are created as given, and every link
    is added; an entity the cube already has keeps its own count."""
    for start in range(0, len(rows), CHUNK):
        s.execute(insert(Entity).values([
            {"id": uuid.uuid4(), "tenant_id": tenant_id, "cube_id": cube_id, "key": key, "name": name,
             "kind": kind, "mentions": mentions}
            for key, name, kind, mentions, _ in rows[start:start + CHUNK]
        ]).on_conflict_do_nothing(index_elements=["cube_id", "key"]))
    found = s.execute(select(Entity.key, Entity.id).where(Entity.cube_id == cube_id))
    ids = {key: entity_id for key, entity_id in found}
    links = [{"memory_id": m, "entity_id": ids[key]} for key, _, _, _, members in rows for m in members]
    for start in range(0, len(links), CHUNK):
        s.execute(insert(MemoryEntity).values(links[start:start + CHUNK]).on_conflict_do_nothing())


def activations_in_cube(s: Session, cube_id: uuid.UUID) -> list[Activation]:
    """Live caches (active, or evicted and stale ones that keep their text to be rebuilt from)."""
    return list(s.scalars(select(Activation).where(Activation.cube_id == cube_id, Activation.status != "deleted")
                          .order_by(Activation.created_at, Activation.id)))


def add_rows(s: Session, rows: Sequence[Activation | Adapter]) -> None:
    s.add_all(rows)
    s.flush()


def adapters_in_cube(s: Session, cube_id: uuid.UUID) -> list[Adapter]:
    return list(s.scalars(select(Adapter).where(Adapter.cube_id == cube_id, Adapter.status == "active")
                          .order_by(Adapter.name, Adapter.version)))


def most_important(s: Session, cube_id: uuid.UUID, limit: int) -> list[Memory]:
    """Active memories, most important first: importance, then heat, then how often they were retrieved."""
    return list(s.scalars(
        select(Memory).where(Memory.cube_id == cube_id, Memory.status == "active")
        .order_by(Memory.importance.desc(), Memory.heat.desc(), Memory.access_count.desc(), Memory.created_at.desc(),
                  Memory.id)
        .limit(limit)))
