"""Cube lifecycle: snapshots (a cube's archive kept in Postgres, restorable) and forget requests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, Uuid
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow
from app.models.entities import TZ


class Snapshot(Base):
    """A cube's archive (the same format as ``GET /archive``) at one moment; in Postgres, so it is as durable
    as the memories it restores."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_tenant_cube", "tenant_id", "cube_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"))
    label: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="manual")  # manual | pre_restore
    memory_count: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)


class ForgetRequest(Base):
    """"Forget my address": the request, without the forgotten content, and which memories it archived."""

    __tablename__ = "forget_requests"
    __table_args__ = (Index("ix_forget_requests_tenant_cube", "tenant_id", "cube_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(Text)
    detector: Mapped[str] = mapped_column(String(16))  # rules | llm
    policy: Mapped[str] = mapped_column(String(16))  # archive | purge
    status: Mapped[str] = mapped_column(String(16), default="applied")  # applied | reverted | purged
    memory_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    key_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    reverted_at: Mapped[datetime | None] = mapped_column(TZ)
