"""Helpers of the worker tests: wait for jobs, read the database."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.conftest import TenantCtx

Json = dict[str, Any]


def wait_job(http: httpx.Client, job_id: str, timeout: float = 120, until: tuple[str, ...] = ("done", "failed",
                                                                                               "cancelled")) -> Json:
    deadline = time.monotonic() + timeout
    while True:
        r = http.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job: Json = r.json()
        if job["status"] in until:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job did not finish in {timeout}s: {job}")
        time.sleep(0.2)


def consolidate(t: TenantCtx, cube: str, **body: Any) -> Json:
    """Ask for a run once enrichment has settled: a job skips memories that enrichment holds locked (they
    are taken at the next run), and these tests want every memory considered now."""
    deadline = time.monotonic() + 120
    while t.http.get(f"/v1/cubes/{cube}").json()["enrichment_pending"] and time.monotonic() < deadline:
        time.sleep(0.1)
    r = t.http.post(f"/v1/cubes/{cube}/consolidate", json=body or None)
    assert r.status_code == 202, r.text
    return dict(r.json())


def write(t: TenantCtx, cube: str, *items: Json | str) -> Json:
    memories = [{"content": it} if isinstance(it, str) else it for it in items]
    r = t.http.post(f"/v1/cubes/{cube}/memories", json={"memories": memories})
    assert r.status_code == 201, r.text
    return dict(r.json())


def patch_content(t: TenantCtx, memory_id: str, content: str) -> Json:
    r = t.http.patch(f"/v1/memories/{memory_id}", json={"content": content})
    assert r.status_code == 200, r.text
    return dict(r.json())


def get(t: TenantCtx, memory_id: str) -> Json:
    r = t.http.get(f"/v1/memories/{memory_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())
