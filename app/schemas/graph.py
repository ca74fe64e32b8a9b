"""Graph routes: a memory's links, a cube's graph page, and its entities."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class EdgeOut(BaseModel):
    id: uuid.UUID
    source_id: uuid.UUID
    target_id: uuid.UUID
    type: str
    weight: float
    created_at: datetime


class LinkOut(BaseModel):
    """An edge seen from one memory: the other end and which way the edge points."""

    edge: EdgeOut
    direction: str  # "out" | "in"
    memory_id: uuid.UUID
    content: str


class MemoryLinks(BaseModel):
    memory_id: uuid.UUID
    entities: list[str]
    links: list[LinkOut]


class GraphNode(BaseModel):
    id: uuid.UUID
    content: str
    memory_type: str
    session_id: str | None
    occurred_at: datetime | None


class GraphPage(BaseModel):
    nodes: list[GraphNode]
    edges: list[EdgeOut]
    next_cursor: str | None = None


class EntityOut(BaseModel):
    id: uuid.UUID
    name: str
    kind: str
    mentions: int
    created_at: datetime


class EntityList(BaseModel):
    entities: list[EntityOut]
    next_cursor: str | None = None
