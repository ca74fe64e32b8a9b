"""SQLAlchemy 2 models: the source of truth. Schema changes go through Alembic only."""

from app.models.activation import Activation
from app.models.base import Base
from app.models.changes import IndexChange
from app.models.entities import (
    ApiKey,
    AuditLog,
    Cube,
    IdempotencyRecord,
    Memory,
    MemoryVersion,
    Tenant,
)
from app.models.graph import Edge, Entity, MemoryEntity
from app.models.jobs import CubePolicy, Job
from app.models.lifecycle import ForgetRequest, Snapshot
from app.models.parametric import Adapter

__all__ = [
    "Activation", "Adapter", "ApiKey", "AuditLog", "Base", "Cube", "CubePolicy", "Edge", "Entity", "ForgetRequest",
    "IdempotencyRecord", "IndexChange", "Job", "Memory", "MemoryEntity", "MemoryVersion", "Snapshot", "Tenant",
]
