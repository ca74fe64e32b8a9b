"""Shapes shared by several routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel


def _storable_text(value: str) -> str:
    """Postgres text cannot hold NUL, and a lone surrogate is not UTF-8: refuse both with a 422."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode (no lone surrogates)") from exc
    return value


def _utc(value: datetime) -> datetime:
    """Naive times are taken as UTC; every time is kept in UTC and must be representable there."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("is out of range once converted to UTC") from exc


Text = Annotated[str, AfterValidator(_storable_text)]
"""A string that can be stored in (or compared against) a Postgres text column."""

UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
"""An aware UTC datetime; naive input is taken as UTC."""


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorEnvelope(BaseModel):  # documents the shape in OpenAPI; app.api.errors builds it
    """Every error response: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorBody
