"""Parametric memory: LoRA adapters of the local model. The safetensors files are content-addressed in the data
dir; this table is the truth about which adapter exists, for which base model, and in which version."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow
from app.models.entities import TZ


class Adapter(Base):
    """One version of a named adapter of a cube; a new upload or distillation of the same name is version + 1."""

    __tablename__ = "adapters"
    __table_args__ = (
        UniqueConstraint("cube_id", "name", "version"),
        Index("ix_adapters_tenant_cube", "tenant_id", "cube_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The same fingerprint activation memory uses: an adapter only attaches to the exact base model.
    base_fingerprint: Mapped[str] = mapped_column(String(64))
    base_model: Mapped[str] = mapped_column(String(200))
    rank: Mapped[int] = mapped_column(Integer)
    alpha: Mapped[int] = mapped_column(Integer)
    target_modules: Mapped[list[str]] = mapped_column(ARRAY(String(100)))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))  # upload | distill | import
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | deleted
    created_by: Mapped[str | None] = mapped_column(String(64))  # API key id or job id
    job_id: Mapped[uuid.UUID | None] = mapped_column()
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(TZ)
