"""Tenant isolation: another tenant's cube or memory ids give 404 on every route and change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Json, TenantCtx, add_memories, assert_error, make_cube, search_ids


def state(t: TenantCtx, cube: str, memory: str) -> Json:
    """Everything observable about a tenant's cube and memory."""
    export = t.http.get(f"/v1/cubes/{cube}/export")
    assert export.status_code == 200
    lines = [line for line in export.text.splitlines()[1:] if line]
    return {
        "cubes": t.http.get("/v1/cubes").json(),
        "memories": t.http.get(f"/v1/cubes/{cube}/memories").json(),
        "memory": t.http.get(f"/v1/memories/{memory}").json(),
        "history": t.http.get(f"/v1/memories/{memory}/history").json(),
        "export": lines,
    }


@pytest.fixture
def victim(other_tenant: TenantCtx) -> tuple[TenantCtx, str, str]:
    cube = make_cube(other_tenant, "private")
    memory = add_memories(other_tenant, cube, {"content": "The vault code is 4711", "tags": ["secret"]})[0]
    # Give it a history, so that history leaks would show.
    r = other_tenant.http.patch(f"/v1/memories/{memory['id']}", json={"importance": 0.9, "reason": "flag"})
    assert r.status_code == 200
    return other_tenant, cube, str(memory["id"])


def attacks(cube: str, memory: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx kwargs) of every tenant route aimed at someone else's ids."""
    export_line = '{"type": "header", "format": "memcubed.cube-export", "format_version": 1}\n'
    return [
        ("GET", f"/v1/cubes/{cube}", {}),
        ("DELETE", f"/v1/cubes/{cube}", {}),
        ("GET", f"/v1/cubes/{cube}/memories", {}),
        ("POST", f"/v1/cubes/{cube}/memories", {"json": {"memories": [{"content": "planted"}]}}),
        ("POST", f"/v1/cubes/{cube}/messages",
         {"json": {"session_id": "s", "messages": [{"role": "user", "content": "planted"}]}}),
        ("GET", f"/v1/cubes/{cube}/export", {}),
        ("POST", f"/v1/cubes/{cube}/import", {"content": export_line.encode(),
                                              "headers": {"Content-Type": "application/x-ndjson"}}),
        ("GET", f"/v1/memories/{memory}", {}),
        ("PATCH", f"/v1/memories/{memory}", {"json": {"content": "overwritten"}}),
        ("DELETE", f"/v1/memories/{memory}", {}),
        ("POST", f"/v1/memories/{memory}/restore", {}),
        ("GET", f"/v1/memories/{memory}/history", {}),
        ("POST", "/v1/search", {"json": {"query": "vault code", "cube_ids": [cube]}}),
    ]


def test_other_tenants_ids_are_404_on_every_route(tenant: TenantCtx, cube: str,
                                                   victim: tuple[TenantCtx, str, str]) -> None:
    owner, their_cube, their_memory = victim
    before = state(owner, their_cube, their_memory)
    for method, path, kwargs in attacks(their_cube, their_memory):
        r = tenant.http.request(method, path, **kwargs)
        error = assert_error(r, 404, "not_found")
        assert error["details"]["id"] in (their_cube, their_memory), (method, path)
        # Indistinguishable from an id that does not exist.
        assert error["message"] in (f"cube {their_cube} not found", f"memory {their_memory} not found")
    # Search over my own cube plus theirs is refused whole, not filtered.
    r = tenant.http.post("/v1/search", json={"query": "vault code", "cube_ids": [cube, their_cube]})
    assert assert_error(r, 404, "not_found")["details"] == {"kind": "cube", "id": their_cube}
    assert state(owner, their_cube, their_memory) == before
    assert search_ids(owner, "vault code", [their_cube], top_k=1) == [their_memory]
    # And the attacker's own view holds nothing of theirs.
    assert tenant.http.get("/v1/cubes").json()["cubes"][0]["id"] == cube
    assert len(tenant.http.get("/v1/cubes").json()["cubes"]) == 1


def test_deleted_memory_of_another_tenant_cannot_be_restored(tenant: TenantCtx,
                                                             victim: tuple[TenantCtx, str, str]) -> None:
    owner, their_cube, their_memory = victim
    assert owner.http.delete(f"/v1/memories/{their_memory}").status_code == 200
    before = state(owner, their_cube, their_memory)
    assert_error(tenant.http.post(f"/v1/memories/{their_memory}/restore"), 404, "not_found")
    assert state(owner, their_cube, their_memory) == before
    assert before["memory"]["status"] == "deleted"


def test_same_cube_name_in_two_tenants_is_two_cubes(tenant: TenantCtx, victim: tuple[TenantCtx, str, str]) -> None:
    owner, their_cube, their_memory = victim
    mine = make_cube(tenant, "private")
    add_memories(tenant, mine, "The vault code is 1234")
    assert mine != their_cube
    hits = search_ids(tenant, "vault code", [mine], top_k=10)
    assert their_memory not in hits
    assert len(hits) == 1
    assert search_ids(owner, "vault code", [their_cube], top_k=10) == [their_memory]


def test_idempotency_records_do_not_leak_across_tenants(tenant: TenantCtx,
                                                        victim: tuple[TenantCtx, str, str]) -> None:
    owner, their_cube, _ = victim
    headers = {"Idempotency-Key": "shared-key"}
    body = {"memories": [{"content": "owner's memory"}]}
    first = owner.http.post(f"/v1/cubes/{their_cube}/memories", json=body, headers=headers)
    assert first.status_code == 201
    # The other tenant replaying the same key and body against that cube gets a 404, not the owner's result.
    r = tenant.http.post(f"/v1/cubes/{their_cube}/memories", json=body, headers=headers)
    assert_error(r, 404, "not_found")
