"""Shapes shared by several routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorEnvelope(BaseModel):
    """Every error response: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorBody
