"""Memory, message and search routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query

from app.api import metrics
from app.api.deps import C, IdemKey, P
from app.schemas.memories import (
    MemoriesCreate,
    MemoryBatch,
    MemoryFilters,
    MemoryHistory,
    MemoryList,
    MemoryOrder,
    MemoryOut,
    MemoryPatch,
    MessagesCreate,
    SearchRequest,
    SearchResponse,
)
from app.services.base import Idempotency

router = APIRouter(prefix="/v1", tags=["memories"])


@router.post("/cubes/{cube_id}/memories", status_code=201, response_model=MemoryBatch)
def add_memories(cube_id: uuid.UUID, body: MemoriesCreate, c: C, p: P, idem: IdemKey = None) -> MemoryBatch:
    return c.memories.add(p, cube_id, body.memories,
                          Idempotency.of(idem, "memories", str(cube_id), body.model_dump(mode="json")))


@router.get("/cubes/{cube_id}/memories", response_model=MemoryList)
def list_memories(
    cube_id: uuid.UUID, c: C, p: P,
    filters: Annotated[MemoryFilters, Query()],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    order: Annotated[MemoryOrder, Query(
        description="created: in the order they were written; event: by event time (occurred_at, else "
        "created_at), then created_at. A cursor pages only the order it came from.")] = "created",
) -> MemoryList:
    return c.memories.list_page(p, cube_id, filters, limit, cursor, order)


@router.post("/cubes/{cube_id}/messages", status_code=201, response_model=MemoryBatch)
def add_messages(cube_id: uuid.UUID, body: MessagesCreate, c: C, p: P, idem: IdemKey = None) -> MemoryBatch:
    return c.memories.add_messages(p, cube_id, body,
                                   Idempotency.of(idem, "messages", str(cube_id), body.model_dump(mode="json")))


@router.get("/memories/{memory_id}", response_model=MemoryOut)
def get_memory(memory_id: uuid.UUID, c: C, p: P) -> MemoryOut:
    return c.memories.get(p, memory_id)


@router.patch("/memories/{memory_id}", response_model=MemoryOut)
def update_memory(memory_id: uuid.UUID, body: MemoryPatch, c: C, p: P) -> MemoryOut:
    return c.memories.update(p, memory_id, body)


@router.delete("/memories/{memory_id}", response_model=MemoryOut)
def delete_memory(
    memory_id: uuid.UUID, c: C, p: P,
    hard: Annotated[bool, Query(description="Destroy the memory and its versions (audited); default: soft delete.")]
    = False,
) -> MemoryOut:
    if hard:
        return c.forgetting.hard_delete(p, memory_id)
    return c.memories.delete(p, memory_id)


@router.post("/memories/{memory_id}/restore", response_model=MemoryOut)
def restore_memory(memory_id: uuid.UUID, c: C, p: P) -> MemoryOut:
    return c.memories.restore(p, memory_id)


@router.get("/memories/{memory_id}/history", response_model=MemoryHistory)
def memory_history(memory_id: uuid.UUID, c: C, p: P) -> MemoryHistory:
    return c.memories.history(p, memory_id)


@router.post("/search", response_model=SearchResponse)
def search(body: SearchRequest, c: C, p: P, background: BackgroundTasks) -> SearchResponse:
    result = c.search.search(p, body) if body.budget is None else c.routing.search(p, body)
    metrics.count_search("search", body.mode if body.budget is None else "routed", result.routing)
    if result.results:
        background.add_task(c.search.record_access, [hit.memory.id for hit in result.results])
    return result
