"""Forget requests and the memory look-ups that find what a request is about."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from app.models import Cube, Memory
from app.models.lifecycle import ForgetRequest


def add(s: Session, row: ForgetRequest) -> ForgetRequest:
    s.add(row)
    s.flush()
    return row


def for_tenant(s: Session, tenant_id: uuid.UUID, request_id: uuid.UUID, *, lock: bool = False) -> ForgetRequest | None:
    """A tenant's forget request in a live cube; another tenant's is indistinguishable from none."""
    stmt = (select(ForgetRequest).join(Cube, Cube.id == ForgetRequest.cube_id)
            .where(ForgetRequest.id == request_id, ForgetRequest.tenant_id == tenant_id, Cube.status != "deleted"))
    if lock:
        stmt = stmt.with_for_update(of=ForgetRequest)
    return s.scalar(stmt)


def in_cube(s: Session, cube_id: uuid.UUID, limit: int) -> list[ForgetRequest]:
    return list(s.scalars(select(ForgetRequest).where(ForgetRequest.cube_id == cube_id)
                          .order_by(ForgetRequest.created_at.desc(), ForgetRequest.id).limit(limit)))


def active_containing(s: Session, cube_id: uuid.UUID, words: Sequence[str], limit: int) -> list[Memory]:
    """Active memories whose content has every word (at a word start, any ending: "address" finds
    "addresses"), locked for the change that follows."""
    if not words:
        return []
    conds = [Memory.content.regexp_match(r"\m" + re.escape(w), flags="i") for w in words]
    stmt = (select(Memory).where(Memory.cube_id == cube_id, Memory.status == "active", and_(*conds))
            .order_by(Memory.created_at, Memory.id).limit(limit).with_for_update())
    return list(s.scalars(stmt))


def active_by_vec_ids(s: Session, cube_id: uuid.UUID, vec_ids: Sequence[int]) -> list[Memory]:
    if not vec_ids:
        return []
    stmt = (select(Memory).where(Memory.cube_id == cube_id, Memory.vec_id.in_(list(vec_ids)),
                                 Memory.status == "active").with_for_update())
    return list(s.scalars(stmt))


def memories_locked(s: Session, memory_ids: Sequence[uuid.UUID]) -> list[Memory]:
    if not memory_ids:
        return []
    return list(s.scalars(select(Memory).where(Memory.id.in_(list(memory_ids))).with_for_update()))
