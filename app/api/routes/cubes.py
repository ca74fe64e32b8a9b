"""MemCube routes, including export and import."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import C, IdemKey, P, read_body
from app.schemas.cubes import CubeCreate, CubeList, CubeOut, CubePatch, ImportResult
from app.services.base import Idempotency

router = APIRouter(prefix="/v1/cubes", tags=["cubes"])


@router.post("", status_code=201, response_model=CubeOut)
def create_cube(body: CubeCreate, c: C, p: P, idem: IdemKey = None) -> CubeOut:
    return c.cubes.create(p, body, Idempotency.of(idem, "cube", body.model_dump()))


@router.get("", response_model=CubeList)
def list_cubes(c: C, p: P) -> CubeList:
    return CubeList(cubes=c.cubes.list_all(p))


@router.get("/{cube_id}", response_model=CubeOut)
def get_cube(cube_id: uuid.UUID, c: C, p: P) -> CubeOut:
    return c.cubes.get(p, cube_id)


@router.patch("/{cube_id}", response_model=CubeOut)
def update_cube(cube_id: uuid.UUID, body: CubePatch, c: C, p: P) -> CubeOut:
    return c.cubes.update(p, cube_id, body)


@router.delete("/{cube_id}", status_code=204)
def delete_cube(cube_id: uuid.UUID, c: C, p: P) -> Response:
    c.cubes.delete(p, cube_id)
    return Response(status_code=204)


@router.get("/{cube_id}/export", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}}})
def export_cube(cube_id: uuid.UUID, c: C, p: P) -> StreamingResponse:
    lines = c.memories.export(p, cube_id)
    return StreamingResponse(lines, media_type="application/x-ndjson",
                             headers={"Content-Disposition": f'attachment; filename="cube-{cube_id}.jsonl"'})


@router.post("/{cube_id}/import", status_code=201, response_model=ImportResult,
             openapi_extra={"requestBody": {"required": True, "content": {"application/x-ndjson": {}}}})
async def import_cube(cube_id: uuid.UUID, request: Request, c: C, p: P, idem: IdemKey = None) -> ImportResult:
    p.require_cube(cube_id, "write")  # before the body is read: a read key does not get to upload 256 MB
    body = await read_body(request, c.settings.max_import_bytes, "import body")
    idempotency = Idempotency.of(idem, "import", str(cube_id), body.decode(errors="replace"))
    return await run_in_threadpool(c.memories.import_, p, cube_id, body, idempotency)
