"""Liveness and readiness."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import C

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(c: C) -> JSONResponse:
    """Ready when the database answers; "degraded" (still 200: reads and writes work) names what does not."""
    checks = {"database": c.database_ok(), "index": True}
    degraded = c.degraded()
    if c.settings.redis_url:
        checks["redis"] = "redis" not in degraded
    if c.settings.llm_base_url:
        checks["llm"] = "llm" not in degraded
    ok = checks["database"] and checks["index"]
    body: dict[str, Any] = {"status": "not_ready" if not ok else "degraded" if degraded else "ready", "checks": checks,
                            # Which process answered (several serve one port) and how far it has applied the
                            # change log: what a client's X-Memcubed-Min-Seq is compared with.
                            "process": {"pid": os.getpid(), "applied_through": c.changes.applied_through}}
    if degraded:
        body["degraded"] = degraded
    return JSONResponse(body, status_code=200 if ok else 503)
