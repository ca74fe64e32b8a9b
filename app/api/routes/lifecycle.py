"""Cube lifecycle routes: archive and import-archive, fork, snapshots and restore, merge, fuse."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import C, IdemKey, P, read_body
from app.schemas.lifecycle import (
    ArchiveImportResult,
    ForkRequest,
    FuseRequest,
    FuseResult,
    MergeRequest,
    MergeResult,
    RestoreResult,
    SnapshotCreate,
    SnapshotList,
    SnapshotOut,
)
from app.services.base import Idempotency

router = APIRouter(prefix="/v1/cubes", tags=["lifecycle"])
TAR = "application/x-tar"


@router.get("/{cube_id}/archive", response_class=StreamingResponse, responses={200: {"content": {TAR: {}}}})
def archive_cube(cube_id: uuid.UUID, c: C, p: P) -> StreamingResponse:
    chunks = c.lifecycle.archive(p, cube_id)
    return StreamingResponse(chunks, media_type=TAR,
                             headers={"Content-Disposition": f'attachment; filename="cube-{cube_id}.tar"'})


@router.post("/import-archive", status_code=201, response_model=ArchiveImportResult,
             openapi_extra={"requestBody": {"required": True, "content": {TAR: {}}}})
async def import_archive(request: Request, c: C, p: P, idem: IdemKey = None,
                         name: Annotated[str | None, Query(min_length=1, max_length=200)] = None
                         ) -> ArchiveImportResult:
    """The raw tar as the body (``Content-Type: application/x-tar``); ``name`` renames the new cube."""
    p.require_unscoped()  # before the body is read: a key that may not import does not get to upload it
    body = await read_body(request, c.settings.max_import_bytes, "archive")
    idempotency = Idempotency.of(idem, "import-archive", hashlib.sha256(body).hexdigest(), name)
    return await run_in_threadpool(c.lifecycle.import_archive, p, body, name, idempotency)


@router.post("/{cube_id}/fork", status_code=201, response_model=ArchiveImportResult)
def fork_cube(cube_id: uuid.UUID, body: ForkRequest, c: C, p: P, idem: IdemKey = None) -> ArchiveImportResult:
    return c.lifecycle.fork(p, cube_id, body, Idempotency.of(idem, "fork", str(cube_id), body.model_dump()))


@router.post("/{cube_id}/snapshots", status_code=201, response_model=SnapshotOut)
def create_snapshot(cube_id: uuid.UUID, body: SnapshotCreate, c: C, p: P, idem: IdemKey = None) -> SnapshotOut:
    return c.snapshots.create_snapshot(p, cube_id, body,
                                       Idempotency.of(idem, "snapshot", str(cube_id), body.model_dump()))


@router.get("/{cube_id}/snapshots", response_model=SnapshotList)
def list_snapshots(cube_id: uuid.UUID, c: C, p: P) -> SnapshotList:
    return c.snapshots.list_snapshots(p, cube_id)


@router.delete("/{cube_id}/snapshots/{snapshot_id}", status_code=204)
def delete_snapshot(cube_id: uuid.UUID, snapshot_id: uuid.UUID, c: C, p: P) -> Response:
    c.snapshots.delete_snapshot(p, cube_id, snapshot_id)
    return Response(status_code=204)


@router.post("/{cube_id}/snapshots/{snapshot_id}/restore", response_model=RestoreResult)
def restore_snapshot(cube_id: uuid.UUID, snapshot_id: uuid.UUID, c: C, p: P) -> RestoreResult:
    return c.snapshots.restore(p, cube_id, snapshot_id)


@router.post("/{cube_id}/merge", response_model=MergeResult)
def merge_cube(cube_id: uuid.UUID, body: MergeRequest, c: C, p: P, idem: IdemKey = None) -> MergeResult:
    return c.merges.merge(p, cube_id, body, Idempotency.of(idem, "merge", str(cube_id), body.model_dump()))


@router.post("/{cube_id}/fuse", status_code=202, response_model=FuseResult)
def fuse_cube(cube_id: uuid.UUID, body: FuseRequest, c: C, p: P) -> FuseResult:
    return c.merges.fuse(p, cube_id, body)
