"""From the API's filter fields to the repository's conditions, in one place."""

from __future__ import annotations

from typing import Any

from app.repositories.memories import MemoryFilter
from app.schemas.memories import MemoryFilters


def memory_filter(fields: MemoryFilters | None, **fixed: Any) -> MemoryFilter:
    """The conditions of ``fields`` (none when absent), with ``fixed`` ones (e.g. ``status="active"``) on top."""
    given = fields.model_dump() if fields is not None else {}
    return MemoryFilter(**{**given, **fixed})
