"""Activation memory and generation routes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.api.deps import C, P
from app.schemas.activation import (
    ActivationCreate,
    ActivationList,
    ActivationOut,
    ActivationStats,
    GenerateRequest,
    GenerateResponse,
)

router = APIRouter(prefix="/v1", tags=["activation"])


@router.post("/cubes/{cube_id}/activations", status_code=201, response_model=ActivationOut)
def create_activation(cube_id: uuid.UUID, body: ActivationCreate, c: C, p: P) -> ActivationOut:
    return c.activation.create(p, cube_id, body)


@router.get("/cubes/{cube_id}/activations", response_model=ActivationList)
def list_activations(cube_id: uuid.UUID, c: C, p: P) -> ActivationList:
    return c.activation.list(p, cube_id)


@router.get("/activations/stats", response_model=ActivationStats)
def activation_stats(c: C, p: P) -> ActivationStats:
    return c.activation.stats(p)


@router.delete("/activations/{activation_id}", response_model=ActivationOut)
def delete_activation(activation_id: uuid.UUID, c: C, p: P) -> ActivationOut:
    return c.activation.delete(p, activation_id)


@router.post("/generate", response_model=GenerateResponse)
def generate(body: GenerateRequest, c: C, p: P) -> GenerateResponse:
    return c.generation.generate(p, body)
