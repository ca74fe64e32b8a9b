"""Aggregates that Prometheus reads at scrape time: the enrichment backlog, jobs by kind and state, activation
tier usage."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Activation, Cube, Job, Memory


def enrichment_backlog(s: Session) -> tuple[int, datetime | None]:
    """Active memories not enriched yet (in live cubes), and when the oldest of them was written."""
    row = s.execute(
        select(func.count(), func.min(Memory.created_at))
        .join(Cube, Cube.id == Memory.cube_id)
        .where(Memory.enriched_at.is_(None), Memory.status == "active", Cube.status != "deleted")
    ).one()
    return int(row[0]), row[1]


def jobs_by_state(s: Session) -> list[tuple[str, str, int]]:
    """(kind, status, count) over every job."""
    rows = s.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status))
    return [(kind, status, int(n)) for kind, status, n in rows]


def activation_usage(s: Session) -> list[tuple[str, int, int]]:
    """(tier, bytes, entries) of live activations, over every tenant."""
    rows = s.execute(
        select(Activation.tier, func.coalesce(func.sum(Activation.nbytes), 0), func.count())
        .where(Activation.status == "active").group_by(Activation.tier)
    )
    return [(str(tier), int(total), int(count)) for tier, total, count in rows if tier]
