"""Activation metadata rows, and the memory reads that render a prefix."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Activation, Cube, Memory


def add(s: Session, row: Activation) -> Activation:
    s.add(row)
    s.flush()
    return row


def get(s: Session, activation_id: uuid.UUID) -> Activation | None:
    return s.get(Activation, activation_id)


def for_tenant(
    s: Session, tenant_id: uuid.UUID, activation_id: uuid.UUID, *, lock: bool = False
) -> Activation | None:
    """A tenant's live activation in a live cube; another tenant's is indistinguishable from none."""
    stmt = (
        select(Activation)
        .join(Cube, Cube.id == Activation.cube_id)
        .where(
            Activation.id == activation_id,
            Activation.tenant_id == tenant_id,
            Activation.status != "deleted",
            Cube.status != "deleted",
        )
    )
    if lock:
        stmt = stmt.with_for_update(of=Activation)
    return s.scalar(stmt)


def in_cube(s: Session, cube_id: uuid.UUID) -> list[Activation]:
    return list(
        s.scalars(
            select(Activation)
            .where(Activation.cube_id == cube_id, Activation.status != "deleted")
            .order_by(Activation.created_at.desc(), Activation.id)
        )
    )


def live_by_tokens(s: Session, cube_id: uuid.UUID, fingerprint: str, token_hash: str) -> Activation | None:
    return s.scalar(
        select(Activation).where(
            Activation.cube_id == cube_id,
            Activation.fingerprint == fingerprint,
            Activation.token_hash == token_hash,
            Activation.status == "active",
        )
    )


def active(s: Session, fingerprint: str | None = None) -> list[Activation]:
    """Live rows (of one model's fingerprint, when given) whose cube still exists."""
    stmt = (
        select(Activation)
        .join(Cube, Cube.id == Activation.cube_id)
        .where(Activation.status == "active", Cube.status != "deleted")
    )
    if fingerprint is not None:
        stmt = stmt.where(Activation.fingerprint == fingerprint)
    return list(s.scalars(stmt))


def in_memory_tiers(s: Session) -> list[Activation]:
    """Rows that a previous process left in a memory tier: after a restart only their disk copy can remain."""
    return list(
        s.scalars(
            select(Activation).where(Activation.status == "active", Activation.tier.in_(("gpu", "cpu")))
        )
    )


def usage_by_tier(s: Session, tenant_id: uuid.UUID) -> dict[str, tuple[int, int]]:
    """Bytes and entry count of a tenant's live activations per tier."""
    rows = s.execute(
        select(Activation.tier, func.coalesce(func.sum(Activation.nbytes), 0), func.count())
        .where(Activation.tenant_id == tenant_id, Activation.status == "active")
        .group_by(Activation.tier)
    )
    return {str(tier): (int(total), int(count)) for tier, total, count in rows if tier}


def memories_in_cube(
    s: Session, cube_id: uuid.UUID, memory_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Memory]:
    rows = s.scalars(
        select(Memory).where(Memory.cube_id == cube_id, Memory.id.in_(memory_ids), Memory.status == "active")
    )
    return {m.id: m for m in rows}
