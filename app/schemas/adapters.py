"""Parametric memory (LoRA adapters): requests and responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.memories import SearchFilters


class AdapterOut(BaseModel):
    id: uuid.UUID
    cube_id: uuid.UUID
    name: str
    version: int
    base_model: str
    base_fingerprint: str = Field(description="The activation-memory fingerprint of the model it attaches to.")
    rank: int
    alpha: int
    target_modules: list[str]
    sha256: str = Field(description="SHA-256 of the adapter_model.safetensors file.")
    size_bytes: int
    source: str = Field(description="upload, distill or import.")
    status: str = Field(description="active or deleted (soft: restorable).")
    created_by: str | None
    job_id: uuid.UUID | None
    metrics: dict[str, Any]
    created_at: datetime
    deleted_at: datetime | None


class AdapterList(BaseModel):
    adapters: list[AdapterOut]


class DistillRequest(BaseModel):
    """A distillation job: a LoRA adapter of the local model fitted to the cube's (filtered) active memories."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="distilled", min_length=1, max_length=200,
                      description="Adapter name; an existing name gets the next version.")
    memory_filter: SearchFilters | None = Field(default=None, description="Which memories to train on.")
    steps: int | None = Field(default=None, ge=1, le=5000, description="Optimiser steps; default from settings.")
    rank: int | None = Field(default=None, ge=1, le=64)
    learning_rate: float | None = Field(default=None, gt=0.0, le=0.1)
