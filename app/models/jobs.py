"""Background jobs (consolidation, forgetting) and the per-cube forgetting policy."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow
from app.models.entities import TZ

JOB_KINDS = ("consolidate", "forget", "distill", "fuse_activation")
JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")


class Job(Base):
    """One run of a job on one cube: the queue carries only its id, Postgres carries its state."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
        Index("ix_jobs_cube_status", "cube_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    trigger: Mapped[str] = mapped_column(String(16), default="api")  # api | schedule
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=4)
    error: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(TZ)
    finished_at: Mapped[datetime | None] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)


class CubePolicy(Base):
    """How a cube forgets; a cube without a row uses the defaults of ``schemas.jobs.PolicyIn``."""

    __tablename__ = "cube_policies"

    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    threshold: Mapped[float] = mapped_column(Float)
    max_active: Mapped[int | None] = mapped_column(Integer)
    ttl_days: Mapped[float | None] = mapped_column(Float)
    half_life_days: Mapped[float] = mapped_column(Float)
    min_age_hours: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
