"""Parametric memory routes: LoRA adapters of the local model."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from app.api.deps import C, P
from app.schemas.adapters import AdapterList, AdapterOut, DistillRequest
from app.schemas.jobs import JobOut

router = APIRouter(prefix="/v1", tags=["adapters"])


@router.post("/cubes/{cube_id}/adapters", status_code=201, response_model=AdapterOut)
async def upload_adapter(
    cube_id: uuid.UUID,
    c: C,
    p: P,
    adapter_config: Annotated[UploadFile, File(description="peft adapter_config.json")],
    adapter_model: Annotated[UploadFile, File(description="peft adapter_model.safetensors")],
    name: Annotated[str, Form(min_length=1, max_length=200)] = "adapter",
) -> AdapterOut:
    """Multipart upload; an existing name gets the next version. Nothing is kept from a rejected upload."""
    config, tensors = await adapter_config.read(), await adapter_model.read()
    return await run_in_threadpool(c.adapters.upload, p, cube_id, name, config, tensors)


@router.get("/cubes/{cube_id}/adapters", response_model=AdapterList)
def list_adapters(cube_id: uuid.UUID, c: C, p: P, include_deleted: bool = False) -> AdapterList:
    return c.adapters.list(p, cube_id, include_deleted)


@router.post("/cubes/{cube_id}/adapters/distill", status_code=202, response_model=JobOut)
def distill_adapter(cube_id: uuid.UUID, body: DistillRequest, c: C, p: P) -> JobOut:
    return c.adapters.distill(p, cube_id, body)


@router.get("/adapters/{adapter_id}", response_model=AdapterOut)
def get_adapter(adapter_id: uuid.UUID, c: C, p: P) -> AdapterOut:
    return c.adapters.get(p, adapter_id)


@router.delete("/adapters/{adapter_id}", response_model=AdapterOut)
def delete_adapter(adapter_id: uuid.UUID, c: C, p: P) -> AdapterOut:
    return c.adapters.delete(p, adapter_id)


@router.post("/adapters/{adapter_id}/restore", response_model=AdapterOut)
def restore_adapter(adapter_id: uuid.UUID, c: C, p: P) -> AdapterOut:
    return c.adapters.restore(p, adapter_id)
