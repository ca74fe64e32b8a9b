"""The change log (``index_changes``, written by triggers: migration 0008) as its followers read it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import psycopg
from sqlalchemy import CursorResult, delete, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.models import Cube, IndexChange, Memory

CHANNEL = "memcubed_changes"


@dataclass(frozen=True)
class Change:
    seq: int
    cube_id: uuid.UUID
    op: str
    vec_ids: tuple[int, ...]


@dataclass(frozen=True)
class MemoryState:
    """What the indexes need to know of one memory: whether it is searchable, its vector, whether enriched."""

    vec_id: int
    active: bool
    embedding: bytes
    enriched: bool


def transaction_seqs(s: Session) -> list[int]:
    """The changes this transaction logged so far (the triggers keep the list)."""
    value = s.scalar(text("SELECT current_setting('memcubed.seqs', true)"))
    return [int(v) for v in value.split(",")] if value else []


def last_seq(s: Session) -> int:
    return int(s.scalar(select(func.coalesce(func.max(IndexChange.seq), 0))) or 0)


def seq_before(s: Session, at: datetime) -> int:
    """The last change logged before ``at`` (0 if none)."""
    stmt = select(func.coalesce(func.max(IndexChange.seq), 0)).where(IndexChange.created_at < at)
    return int(s.scalar(stmt) or 0)


def changes_after(s: Session, seq: int, limit: int) -> list[Change]:
    rows = s.execute(select(IndexChange.seq, IndexChange.cube_id, IndexChange.op, IndexChange.vec_ids)
                     .where(IndexChange.seq > seq).order_by(IndexChange.seq).limit(limit))
    return [Change(int(q), c, o, tuple(int(v) for v in ids or ())) for q, c, o, ids in rows]


def snapshot_bounds(s: Session) -> tuple[int, int]:
    """(xmin, xmax) of a snapshot taken now: every transaction with an id below xmin has ended."""
    row = s.execute(text("SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint "
                         "FROM pg_current_snapshot() AS s")).one()
    return int(row[0]), int(row[1])


def prune(s: Session, before: datetime) -> int:
    result = cast(CursorResult[Any], s.execute(delete(IndexChange).where(IndexChange.created_at < before)))
    return int(result.rowcount or 0)


def cube_is_live(s: Session, cube_id: uuid.UUID) -> bool:
    return s.scalar(select(Cube.id).where(Cube.id == cube_id, Cube.status != "deleted")) is not None


def memory_states(s: Session, cube_id: uuid.UUID, vec_ids: list[int]) -> list[MemoryState]:
    rows = s.execute(select(Memory.vec_id, Memory.status, Memory.embedding, Memory.enriched_at)
                     .where(Memory.cube_id == cube_id, Memory.vec_id.in_(vec_ids)))
    return [MemoryState(int(v), st == "active", bytes(e), at is not None) for v, st, e, at in rows]


def enriched_active(s: Session, cube_id: uuid.UUID, vec_ids: list[int]) -> list[Memory]:
    return list(s.scalars(select(Memory).where(Memory.cube_id == cube_id, Memory.vec_id.in_(vec_ids),
                                               Memory.status == "active", Memory.enriched_at.is_not(None))))


def listener(database_url: str) -> psycopg.Connection[Any]:
    """A connection of its own that LISTENs on the change channel (autocommit: notifications arrive at once)."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    conn = psycopg.connect(url, autocommit=True, application_name="memcubed-changes")
    conn.execute(f"LISTEN {CHANNEL}")
    return conn


def track_commits(sessions: sessionmaker[Session], claim: Callable[[list[int]], None],
                  committed: Callable[[list[int]], None], release: Callable[[list[int]], None]) -> None:
    """Call ``claim(seqs)`` just before each commit of these sessions that logged changes, with their numbers,
    then ``committed(seqs)`` after it, or ``release(seqs)`` when it rolled back instead.

    The numbers are read just before the commit (pending rows flushed first, so their triggers have run)."""

    def before(session: Session) -> None:
        session.flush()
        seqs = transaction_seqs(session)
        if seqs:
            session.info["memcubed_seqs"] = seqs
            claim(seqs)

    def after(session: Session) -> None:
        seqs = session.info.pop("memcubed_seqs", None)
        if seqs:
            committed(seqs)

    def rolled_back(session: Session) -> None:
        seqs = session.info.pop("memcubed_seqs", None)
        if seqs:
            release(seqs)

    event.listen(sessions, "before_commit", before)
    event.listen(sessions, "after_commit", after)
    event.listen(sessions, "after_rollback", rolled_back)
