"""Graph routes."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.api.deps import C, P
from app.schemas.graph import EntityList, GraphPage, MemoryLinks

router = APIRouter(prefix="/v1", tags=["graph"])
EdgeType = Literal["similar", "shares_entity", "next_in_session", "updates", "contradicts", "derived_from", "mentions"]


@router.get("/memories/{memory_id}/links", response_model=MemoryLinks)
def memory_links(memory_id: uuid.UUID, c: C, p: P) -> MemoryLinks:
    return c.graph.links(p, memory_id)


@router.get("/cubes/{cube_id}/graph", response_model=GraphPage)
def cube_graph(
    cube_id: uuid.UUID, c: C, p: P,
    type: Annotated[list[EdgeType] | None, Query(description="Only these edge types.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> GraphPage:
    return c.graph.graph(p, cube_id, type, limit, cursor)


@router.get("/cubes/{cube_id}/entities", response_model=EntityList)
def cube_entities(
    cube_id: uuid.UUID, c: C, p: P,
    q: Annotated[str | None, Query(max_length=200, description="Substring of the entity name.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> EntityList:
    return c.graph.entities(p, cube_id, limit, cursor, q)
