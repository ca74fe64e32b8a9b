"""The quick start path: tenant → cube → memories → search."""

from __future__ import annotations

from tests.conftest import TenantCtx


def test_quickstart_search_ranks_the_matching_memory_first(tenant: TenantCtx, cube: str) -> None:
    r = tenant.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [
        {"content": "Alice is allergic to peanuts", "memory_type": "semantic"},
        {"content": "Alice moved to Berlin in 2021"},
        {"content": "The weekly sync is on Tuesdays at 10am", "memory_type": "procedural"},
    ]})
    assert r.status_code == 201, r.text
    ids = [m["id"] for m in r.json()["memories"]]
    assert len(ids) == 3
    r = tenant.http.post("/v1/search", json={"query": "which food is Alice allergic to?", "cube_ids": [cube],
                                             "top_k": 2})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results[0]["memory"]["id"] == ids[0]
    assert len(results) == 2
    assert results[0]["score"] > results[1]["score"]
