"""Metadata of activation memories. The KV tensors themselves live in the tiered store, not in Postgres."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow
from app.models.entities import TZ


class Activation(Base):
    """One stored KV cache of a cube's rendered prefix, valid only for the model ``fingerprint`` names."""

    __tablename__ = "activations"
    __table_args__ = (
        Index("ix_activations_tenant_cube", "tenant_id", "cube_id"),
        # One live cache per cube, model and token sequence: building the same prefix again reuses it.
        Index(
            "uq_activations_cube_fp_tokens_live",
            "cube_id",
            "fingerprint",
            "token_hash",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64))
    tokens: Mapped[int] = mapped_column(Integer)
    token_ids: Mapped[bytes] = mapped_column(LargeBinary)
    source: Mapped[str] = mapped_column(String(16))  # text | memories | query
    prefix_text: Mapped[str] = mapped_column(Text)
    nbytes: Mapped[int] = mapped_column("bytes", BigInteger)
    tier: Mapped[str | None] = mapped_column(String(8))  # gpu | cpu | disk; None once evicted
    precision: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | evicted | deleted
    hits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(TZ)
