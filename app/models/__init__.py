"""SQLAlchemy 2 models: the source of truth. Schema changes go through Alembic only."""

from app.models.base import Base
from app.models.entities import (
    ApiKey,
    AuditLog,
    Cube,
    IdempotencyRecord,
    Memory,
    MemoryVersion,
    Tenant,
)

__all__ = ["ApiKey", "AuditLog", "Base", "Cube", "IdempotencyRecord", "Memory", "MemoryVersion", "Tenant"]
