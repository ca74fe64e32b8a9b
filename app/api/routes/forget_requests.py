"""Forget requests made in messages: list a cube's, revert one."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import C, P
from app.schemas.forget_requests import ForgetRequestList, ForgetRequestOut

router = APIRouter(prefix="/v1", tags=["forget requests"])


@router.get("/cubes/{cube_id}/forget-requests", response_model=ForgetRequestList)
def list_forget_requests(cube_id: uuid.UUID, c: C, p: P,
                         limit: Annotated[int, Query(ge=1, le=500)] = 50) -> ForgetRequestList:
    return c.forget_requests.list(p, cube_id, limit)


@router.post("/forget-requests/{request_id}/revert", response_model=ForgetRequestOut)
def revert_forget_request(request_id: uuid.UUID, c: C, p: P) -> ForgetRequestOut:
    return c.forget_requests.revert(p, request_id)
