"""Jobs (consolidation, forgetting), the forgetting policy, feedback and purge."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query

from app.api.deps import C, P
from app.schemas.forgetting import PolicyPreview
from app.schemas.jobs import (
    ConsolidateRequest,
    FeedbackIn,
    JobKind,
    JobList,
    JobOut,
    JobStatus,
    PolicyIn,
    PolicyOut,
    PurgeRequest,
    PurgeResult,
)
from app.schemas.memories import MemoryOut

router = APIRouter(prefix="/v1", tags=["jobs"])


@router.get("/jobs", response_model=JobList)
def list_jobs(c: C, p: P, cube_id: uuid.UUID | None = None, status: JobStatus | None = None,
              kind: JobKind | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> JobList:
    return c.jobs.jobs.list_jobs(p, cube_id, status, kind, limit)


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: uuid.UUID, c: C, p: P) -> JobOut:
    return c.jobs.jobs.get(p, job_id)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: uuid.UUID, c: C, p: P) -> JobOut:
    return c.jobs.jobs.cancel(p, job_id)


@router.post("/cubes/{cube_id}/consolidate", status_code=202, response_model=JobOut)
def consolidate(cube_id: uuid.UUID, c: C, p: P,
                body: Annotated[ConsolidateRequest | None, Body()] = None) -> JobOut:
    req = body or ConsolidateRequest()
    return c.jobs.jobs.request(p, cube_id, "consolidate", req.model_dump())


@router.post("/cubes/{cube_id}/forget", status_code=202, response_model=JobOut)
def forget(cube_id: uuid.UUID, c: C, p: P) -> JobOut:
    return c.jobs.jobs.request(p, cube_id, "forget", {})


@router.get("/cubes/{cube_id}/policy", response_model=PolicyOut)
def get_policy(cube_id: uuid.UUID, c: C, p: P) -> PolicyOut:
    return c.forgetting.get_policy(p, cube_id)


@router.get("/cubes/{cube_id}/policy/preview", response_model=PolicyPreview)
def preview_policy(cube_id: uuid.UUID, c: C, p: P,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> PolicyPreview:
    return c.forgetting.preview(p, cube_id, limit)


@router.put("/cubes/{cube_id}/policy", response_model=PolicyOut)
def put_policy(cube_id: uuid.UUID, body: PolicyIn, c: C, p: P) -> PolicyOut:
    return c.forgetting.put_policy(p, cube_id, body)


@router.post("/cubes/{cube_id}/purge", response_model=PurgeResult)
def purge(cube_id: uuid.UUID, c: C, p: P, body: Annotated[PurgeRequest | None, Body()] = None) -> PurgeResult:
    return c.forgetting.purge(p, cube_id, body or PurgeRequest())


@router.post("/memories/{memory_id}/feedback", response_model=MemoryOut)
def feedback(memory_id: uuid.UUID, body: FeedbackIn, c: C, p: P) -> MemoryOut:
    return c.forgetting.feedback(p, memory_id, body.signal)
