"""Forget requests and the memory look-ups that find what a request is about."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Cube
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


