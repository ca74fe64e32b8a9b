"""Read-side graph use cases: links of a memory, a cube's graph page by page, its entities."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from app.errors import InvalidInput
from app.memory.access import require_cube, require_memory
from app.principal import Principal
from app.repositories import graph as graph_repo
from app.repositories import memories as repo
from app.schemas.graph import EdgeOut, EntityList, EntityOut, GraphNode, GraphPage, LinkOut, MemoryLinks


def _after(cursor: str | None) -> uuid.UUID | None:
    if not cursor:
        return None
    try:
        return uuid.UUID(cursor)
    except ValueError as exc:
        raise InvalidInput("cursor is not one this service returned", {"field": "cursor"}) from exc


class GraphService:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def links(self, principal: Principal, memory_id: uuid.UUID) -> MemoryLinks:
        with self.sessions() as s:
            m = require_memory(s, principal, memory_id, "read")
            edges = graph_repo.edges_of(s, m.id)
            others = {o.id: o for o in repo.memories_by_ids(
                s, [e.target_id if e.source_id == m.id else e.source_id for e in edges])}
            links = []
            for e in edges:
                out = e.source_id == m.id
                other = others[e.target_id if out else e.source_id]
                links.append(LinkOut(edge=EdgeOut.model_validate(e, from_attributes=True),
                                     direction="out" if out else "in", memory_id=other.id, content=other.content))
            names = graph_repo.entity_names_of(s, [m.id])[m.id]
            return MemoryLinks(memory_id=m.id, entities=sorted(names), links=links)

    def graph(self, principal: Principal, cube_id: uuid.UUID, types: Sequence[str] | None, limit: int,
              cursor: str | None) -> GraphPage:
        """A page of edges plus every node they touch, so each page can be drawn on its own."""
        tenant_id = principal.require_cube(cube_id, "read")
        after = _after(cursor)
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
            edges = graph_repo.edges_page(s, cube_id, types, limit + 1, after)
            page = edges[:limit]
            node_ids = list(dict.fromkeys([e.source_id for e in page] + [e.target_id for e in page]))
            nodes = repo.memories_by_ids(s, node_ids)
            return GraphPage(
                nodes=[GraphNode.model_validate(n, from_attributes=True) for n in nodes],
                edges=[EdgeOut.model_validate(e, from_attributes=True) for e in page],
                next_cursor=str(page[-1].id) if len(edges) > limit else None,
            )

    def entities(self, principal: Principal, cube_id: uuid.UUID, limit: int, cursor: str | None,
                 query: str | None) -> EntityList:
        tenant_id = principal.require_cube(cube_id, "read")
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
            found = graph_repo.entities_page(s, cube_id, limit + 1, _after(cursor), query)
            page = found[:limit]
            return EntityList(entities=[EntityOut.model_validate(e, from_attributes=True) for e in page],
                              next_cursor=str(page[-1].id) if len(found) > limit else None)
