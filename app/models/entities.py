"""Tables of the foundation: tenants, keys, cubes, memories, versions, audit, idempotency."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow

TZ = DateTime(timezone=True)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    # Quota overrides set by an admin (migration 0008): {quota name: limit}; a quota not named has the default.
    quotas: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))


class ApiKey(Base):
    """Only the SHA-256 of a key is kept; the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(16))  # "admin" | "tenant"
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(TZ)
    # Scoped sharing (migration 0005): a tenant key limited to these cubes (None = all of the tenant's cubes)
    # with a permission: read < write < admin. Unscoped tenant keys are "admin" on every cube.
    cube_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(Uuid))
    permission: Mapped[str] = mapped_column(String(8), default="admin", server_default=text("'admin'"))


class Cube(Base):
    __tablename__ = "cubes"
    __table_args__ = (
        # Names are unique among a tenant's live cubes; a deleted cube frees its name.
        Index(
            "uq_cubes_tenant_name_live",
            "tenant_id",
            "name",
            unique=True,
            postgresql_where=text("status <> 'deleted'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZ, default=utcnow, onupdate=utcnow)
    # Lifecycle (migration 0005): where the cube came from (import, fork, merge) and what a forget request does.
    provenance: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    forget_policy: Mapped[str] = mapped_column(String(8), default="archive", server_default=text("'archive'"))


class Memory(Base):
    """One memory. The embedding is stored so the FAISS index can always be rebuilt from here."""

    __tablename__ = "memories"
    __table_args__ = (
        Index("ix_memories_cube_created", "cube_id", "created_at", "id"),
        Index("ix_memories_cube_status", "cube_id", "status"),
        Index("ix_memories_cube_hash", "cube_id", "content_hash"),
        Index("ix_memories_unenriched", "cube_id", postgresql_where=text("enriched_at IS NULL")),
        Index("ix_memories_superseded_by", "superseded_by", postgresql_where=text("superseded_by IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Dense integer id used as the FAISS id of this memory.
    vec_id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="plaintext")
    memory_type: Mapped[str] = mapped_column(String(16), default="episodic")
    content: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(200))
    agent_id: Mapped[str | None] = mapped_column(String(200))
    session_id: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime | None] = mapped_column(TZ)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(200)), default=list)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    source: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    version: Mapped[int] = mapped_column(Integer, default=1)
    importance: Mapped[float] = mapped_column(Float, default=0.5)
    access_count: Mapped[int] = mapped_column(Integer, default=0)
    last_accessed_at: Mapped[datetime | None] = mapped_column(TZ)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    embedding_model: Mapped[str] = mapped_column(String(200))
    embedding_dim: Mapped[int] = mapped_column(Integer)
    # Filled after the write is acknowledged: keywords, entities, normalised time expressions.
    enrichment: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    enriched_at: Mapped[datetime | None] = mapped_column(TZ)
    # Consolidation and forgetting (migration 0004): where an archived memory went, its tier and heat, feedback.
    merged_into: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("memories.id", ondelete="SET NULL"))
    superseded_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("memories.id", ondelete="SET NULL"))
    tier: Mapped[str] = mapped_column(String(8), default="short", server_default=text("'short'"))
    heat: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    useful_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    not_useful_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    wrong_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class MemoryVersion(Base):
    """The state of a memory before each update or delete, with the reason."""

    __tablename__ = "memory_versions"
    __table_args__ = (UniqueConstraint("memory_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    memory_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB)
    reason: Mapped[str] = mapped_column(String(200))
    actor_key_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_tenant_at", "tenant_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column()
    key_id: Mapped[uuid.UUID | None] = mapped_column()
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    at: Mapped[datetime] = mapped_column(TZ, default=utcnow)


class IdempotencyRecord(Base):
    """First result of a POST sent with an ``Idempotency-Key``, replayed on retries until it expires
    (MEMCUBED_IDEMPOTENCY_TTL_HOURS). A new API key in it is withheld: see ``ShownOnce``."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("key_id", "idem_key"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    key_id: Mapped[uuid.UUID] = mapped_column()
    idem_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[Any] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow, index=True)  # expiry (migration 0006)
