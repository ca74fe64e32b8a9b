"""A memory row as the API shows it, the state a version keeps, and its event time and heat."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from app.memory.text import content_words
from app.models import Memory
from app.schemas.memories import Feedback, MemoryOut


def memory_out(m: Memory) -> MemoryOut:
    return MemoryOut(
        id=m.id, cube_id=m.cube_id, kind=m.kind, memory_type=m.memory_type, content=m.content,
        content_hash=m.content_hash, user_id=m.user_id, agent_id=m.agent_id, session_id=m.session_id,
        occurred_at=m.occurred_at, created_at=m.created_at, updated_at=m.updated_at, tags=list(m.tags or []),
        metadata=m.meta or {}, source=m.source or {}, status=m.status, version=m.version,
        importance=m.importance, access_count=m.access_count, last_accessed_at=m.last_accessed_at,
        embedding_model=m.embedding_model, embedding_dim=m.embedding_dim, merged_into=m.merged_into,
        superseded_by=m.superseded_by, tier=m.tier or "short", heat=round(m.heat or 0.0, 4),
        feedback=Feedback(useful=m.useful_count or 0, not_useful=m.not_useful_count or 0, wrong=m.wrong_count or 0),
    )


def snapshot(m: Memory) -> dict[str, Any]:
    """The state kept in ``memory_versions`` before each change; JSON so it survives export."""
    out = memory_out(m).model_dump(mode="json", exclude={"id", "cube_id", "embedding_model", "embedding_dim",
                                                                  "admission"})
    return out


def aware(dt: datetime | None) -> datetime | None:
    """Naive times are taken as UTC so event-time ordering never mixes clocks."""
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def when(m: Memory) -> datetime:
    t = m.occurred_at or m.created_at
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def heat_of(m: Memory, now: datetime, half_life_days: float = 30.0) -> float:
    """MemoryOS heat: visits, interaction length and recency of the last visit (or of the write), each in 0..1."""
    visits = min(1.0, math.log1p(m.access_count or 0) / math.log1p(10))
    length = min(1.0, len(content_words(m.content)) / 12)
    last = m.last_accessed_at or m.created_at
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    recency = 0.5 ** (max(0.0, (now - last).total_seconds()) / 86400 / half_life_days)
    return round(0.45 * visits + 0.35 * length + 0.2 * recency, 4)
