"""The memory graph: entities, which memories mention them, and typed weighted edges between memories."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow
from app.models.entities import TZ

EDGE_TYPES = ("similar", "shares_entity", "next_in_session", "updates", "contradicts", "derived_from", "mentions")


class Entity(Base):
    __tablename__ = "entities"
    __table_args__ = (UniqueConstraint("cube_id", "key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))  # lower-cased name: the identity within a cube
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), default="name")
    mentions: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)


class MemoryEntity(Base):
    __tablename__ = "memory_entities"

    memory_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"), primary_key=True)
    entity_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("entities.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Edge(Base):
    __tablename__ = "edges"
    __table_args__ = (
        UniqueConstraint("source_id", "target_id", "type"),
        Index("ix_edges_cube_type", "cube_id", "type"),
        Index("ix_edges_target", "target_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"))
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"))
    target_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
