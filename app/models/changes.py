"""The change log: a numbered row per statement that changed what the derived indexes hold (memories of a cube,
or a cube's deletion). Triggers write it in the writing transaction (migration 0008), so no write path can
forget it; every process follows it to keep its FAISS, fine and graph views in step with Postgres."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base
from app.models.entities import TZ

CHANGE_OPS = ("add", "update", "remove", "drop")


class IndexChange(Base):
    __tablename__ = "index_changes"
    __table_args__ = (Index("ix_index_changes_created_at", "created_at"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # No foreign keys: a deleted cube's or tenant's 'drop' must outlive the rows it names.
    tenant_id: Mapped[uuid.UUID]
    cube_id: Mapped[uuid.UUID]
    op: Mapped[str] = mapped_column(Text)
    vec_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("clock_timestamp()"))
