"""Enrichment after a write is acknowledged: keywords, entities, time expressions, session windows, the
fine-retrieval indexes, graph edges, and A-MEM style evolution of linked older memories.

A cube's enrichment is an ``enrichment`` span (linked to the writes that asked for it) with an
``enrichment.batch`` span per transaction."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from opentelemetry import trace
from sqlalchemy.orm import Session, sessionmaker

from app.graph.extract import entities, keywords
from app.graph.timeexpr import extract_times
from app.memory.records import snapshot
from app.memory.text import indexed_text
from app.models import Memory
from app.models.base import utcnow
from app.repositories import audit
from app.repositories import graph as graph_repo
from app.repositories import memories as repo
from app.vector.fine import FineStore, Window
from app.vector.index import VectorStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkPolicy:
    """Thresholds of the linker; defaults chosen on LoCoMo so that edges stay sparse (a few per memory)."""

    similar_k: int = 5
    similar_min: float = 0.6
    evolve_min: float = 0.75
    entity_fanout: int = 5
    max_tags: int = 20


def window(session: list[Memory], position: int) -> Window:
    """A memory with one and with two turns either side of it in its session."""
    def span(width: int) -> tuple[str, list[int]]:
        members = session[max(0, position - width) : position + width + 1]
        return " ".join(indexed_text(m.content, m.meta) for m in members), [m.vec_id for m in members]

    m = session[position]
    near, near_ids = span(1)
    wide, wide_ids = span(2)
    return Window(m.vec_id, indexed_text(m.content, m.meta), near, near_ids, wide, wide_ids)


def placed(s: Session, cube_id: uuid.UUID, members: Sequence[Memory]) -> Iterator[tuple[Memory, list[Memory], int]]:
    """Each memory with its session's active memories in event order and its position there (a memory without
    a session is a session of its own)."""
    by_session: dict[str | None, list[Memory]] = defaultdict(list)
    for m in members:
        by_session[m.session_id].append(m)
    for session_id, group in by_session.items():
        if session_id is None:
            for m in group:
                yield m, [m], 0
            continue
        ordered = repo.session_neighbours(s, cube_id, session_id)
        position = {o.id: i for i, o in enumerate(ordered)}
        for m in group:
            i = position.get(m.id)
            if i is not None:
                yield m, ordered, i


def windows_around(ordered: list[Memory], i: int, fresh: set[uuid.UUID]) -> Iterator[Window]:
    """The windows that include position ``i``: its own and its indexed neighbours' (``fresh``: memories being
    indexed now, whose enrichment is not committed yet)."""
    for j in range(max(0, i - 2), min(len(ordered), i + 3)):
        other = ordered[j]
        if other.enriched_at is not None or other.id in fresh:
            yield window(ordered, j)


class EnrichmentService:
    def __init__(self, sessions: sessionmaker[Session], vectors: VectorStore, fine: FineStore,
                 policy: LinkPolicy | None = None, tracer: trace.Tracer | None = None) -> None:
        self.sessions = sessions
        self.vectors = vectors
        self.fine = fine
        self.policy = policy or LinkPolicy()
        self.tracer = tracer or trace.get_tracer(__name__)

    def enrich_cube(self, cube_id: uuid.UUID, batch: int = 64, keep_going: Callable[[], bool] = lambda: True,
                    links: Sequence[trace.Link] = ()) -> int:
        """Enrich every pending memory of a cube; returns how many. Safe to run concurrently (skip locked).

        Small batches and ``keep_going`` let a shutting-down service stop between batches; whatever is left
        stays pending in Postgres and is picked up at the next start.
        """
        done = 0
        with self.tracer.start_as_current_span("enrichment", links=links,
                                               attributes={"memcubed.cube_id": str(cube_id)}) as span:
            while keep_going():
                with self.tracer.start_as_current_span("enrichment.batch") as batch_span:
                    n = self._enrich_batch(cube_id, batch)
                    batch_span.set_attribute("memcubed.enrichment.memories", n)
                done += n
                if n < batch:
                    break
            span.set_attribute("memcubed.enrichment.memories", done)
        return done

    def _enrich_batch(self, cube_id: uuid.UUID, batch: int) -> int:
        with self.sessions.begin() as s:
            pending = repo.unenriched(s, cube_id, batch)
            if not pending:
                return 0
            now = utcnow()
            touched: dict[int, Window] = {}
            fresh = {m.id for m in pending}
            for m, ordered, i in placed(s, cube_id, pending):
                touched.update((w.vec_id, w) for w in windows_around(ordered, i, fresh))
                edges = []
                if i > 0:
                    edges.append((ordered[i - 1].id, m.id, "next_in_session", 1.0))
                if i + 1 < len(ordered):
                    edges.append((m.id, ordered[i + 1].id, "next_in_session", 1.0))
                if edges:
                    graph_repo.add_edges(s, cube_id, edges)
            for m in pending:
                self._link(s, m)
                said_at = m.occurred_at or m.created_at
                text = indexed_text(m.content, m.meta)
                enrichment = {
                    "keywords": keywords(text),
                    "entities": entities(text),
                    "times": [t.as_json() for t in extract_times(m.content, said_at)],
                }
                repo.mark_enriched(s, m.id, enrichment, now)
            # Indexed before the commit, so a cube reporting nothing pending is searchable in fine mode; if the
            # commit fails, the start-up check finds the index ahead of Postgres and rebuilds it.
            self.fine.upsert(cube_id, [(m.vec_id, indexed_text(m.content, m.meta)) for m in pending],
                             list(touched.values()))
        return len(pending)

    def _link(self, s: Session, m: Memory) -> None:
        """Entity and similarity edges for one memory, and evolution of the older memories it links to."""
        names = entities(indexed_text(m.content, m.meta))
        entity_ids = graph_repo.upsert_entities(s, m.tenant_id, m.cube_id, names)
        graph_repo.link_entities(s, m.id, list(entity_ids.values()))
        edges = [(m.id, other, "shares_entity", 0.5)
                 for other, _ in graph_repo.sharing_entities(s, list(entity_ids.values()), m.id,
                                                            self.policy.entity_fanout)]
        index = self.vectors.peek(m.cube_id)
        similar: list[tuple[float, int]] = []
        if index is not None:
            query = np.frombuffer(m.embedding, dtype=np.float32)
            scores, vec_ids = index.search(query, self.policy.similar_k + 1)
            similar = [(float(sc), int(v)) for sc, v in zip(scores, vec_ids)
                       if int(v) != m.vec_id and sc >= self.policy.similar_min]
        if similar:
            rows = repo.active_by_vec_ids(s, [v for _, v in similar])
            for score, vec_id in similar:
                other = rows.get(vec_id)
                if other is None:
                    continue
                edges.append((m.id, other.id, "similar", round(score, 4)))
                if score >= self.policy.evolve_min and names:
                    self._evolve(s, other, m, [n.lower() for n in names])
        graph_repo.add_edges(s, m.cube_id, edges)

    def _evolve(self, s: Session, older: Memory, newer: Memory, tags: list[str]) -> None:
        """A-MEM evolution: a closely linked newer memory adds its entities to the older one's tags, as a new
        version of the older memory (never in place)."""
        # Lock the older row as a user edit would, so neither write loses the other's change.
        s.refresh(older, with_for_update=True)
        if older.status != "active":
            return
        new_tags = [t for t in tags if t not in (older.tags or [])]
        if not new_tags or len(older.tags or []) >= self.policy.max_tags:
            return
        repo.add_version(s, older, snapshot(older), f"evolved: linked from {newer.id}", None)
        older.tags = (list(older.tags or []) + new_tags)[: self.policy.max_tags]
        older.version += 1
        older.updated_at = utcnow()
        audit.record(s, tenant_id=older.tenant_id, key_id=None, action="memory.evolve", object_type="memory",
                     object_id=older.id, details={"version": older.version, "from": str(newer.id), "tags": new_tags})
