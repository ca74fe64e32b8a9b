"""MemCube routes: create, list, get, delete, names, memory counts."""

from __future__ import annotations

import uuid
from datetime import datetime

from tests.conftest import TenantCtx, add_memories, assert_error, make_cube, search_ids


def test_create_cube_returns_every_field(tenant: TenantCtx) -> None:
    r = tenant.http.post("/v1/cubes", json={"name": "notes", "description": "work notes", "owner_id": "user-7"})
    assert r.status_code == 201, r.text
    cube = r.json()
    # The shape; later features may add fields, never rename these.
    assert {"created_at", "description", "id", "memory_count", "name", "owner_id", "status", "tenant_id",
            "updated_at"} <= set(cube)
    assert uuid.UUID(cube["id"])
    assert cube["tenant_id"] == tenant.id
    assert cube["name"] == "notes"
    assert cube["description"] == "work notes"
    assert cube["owner_id"] == "user-7"
    assert cube["status"] == "active"
    assert cube["memory_count"] == 0
    assert datetime.fromisoformat(cube["created_at"]).tzinfo is not None
    r = tenant.http.get(f"/v1/cubes/{cube['id']}")
    assert r.status_code == 200
    got = r.json()
    for field in ("id", "tenant_id", "name", "description", "owner_id", "status", "memory_count"):
        assert got[field] == cube[field], field
    assert datetime.fromisoformat(got["created_at"]) == datetime.fromisoformat(cube["created_at"])


def test_optional_fields_default_to_null(tenant: TenantCtx) -> None:
    r = tenant.http.post("/v1/cubes", json={"name": "bare"})
    assert r.status_code == 201
    assert r.json()["description"] is None
    assert r.json()["owner_id"] is None


def test_list_cubes_in_creation_order(tenant: TenantCtx) -> None:
    ids = [make_cube(tenant, name) for name in ("a", "c", "b")]
    r = tenant.http.get("/v1/cubes")
    assert r.status_code == 200
    cubes = r.json()["cubes"]
    assert [c["id"] for c in cubes] == ids
    assert [c["name"] for c in cubes] == ["a", "c", "b"]


def test_duplicate_cube_name_is_409_and_names_are_per_tenant(tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    make_cube(tenant, "shared-name")
    error = assert_error(tenant.http.post("/v1/cubes", json={"name": "shared-name"}), 409, "conflict")
    assert error["details"] == {"name": "shared-name"}
    assert len(tenant.http.get("/v1/cubes").json()["cubes"]) == 1
    # Another tenant may use the same name.
    make_cube(other_tenant, "shared-name")


def test_delete_cube_is_204_then_404(tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "doomed")
    add_memories(tenant, cube, "a memory in a cube that will be deleted")
    r = tenant.http.delete(f"/v1/cubes/{cube}")
    assert r.status_code == 204
    assert r.content == b""
    error = assert_error(tenant.http.get(f"/v1/cubes/{cube}"), 404, "not_found")
    assert error["details"] == {"kind": "cube", "id": cube}
    assert_error(tenant.http.delete(f"/v1/cubes/{cube}"), 404, "not_found")
    assert_error(tenant.http.get(f"/v1/cubes/{cube}/memories"), 404, "not_found")
    assert_error(tenant.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "x"}]}),
                 404, "not_found")
    assert_error(tenant.http.post("/v1/search", json={"query": "memory", "cube_ids": [cube]}), 404, "not_found")
    assert tenant.http.get("/v1/cubes").json() == {"cubes": []}


def test_memories_of_a_deleted_cube_are_gone(tenant: TenantCtx) -> None:
    cube = make_cube(tenant)
    mem = add_memories(tenant, cube, "the spare key is under the flower pot")[0]
    assert tenant.http.delete(f"/v1/cubes/{cube}").status_code == 204
    assert_error(tenant.http.get(f"/v1/memories/{mem['id']}"), 404, "not_found")
    assert_error(tenant.http.patch(f"/v1/memories/{mem['id']}", json={"content": "y"}), 404, "not_found")


def test_name_is_reusable_after_delete(tenant: TenantCtx) -> None:
    first = make_cube(tenant, "reused")
    add_memories(tenant, first, "the old cube's memory about sailing boats")
    assert tenant.http.delete(f"/v1/cubes/{first}").status_code == 204
    second = make_cube(tenant, "reused")
    assert second != first
    r = tenant.http.get(f"/v1/cubes/{second}")
    assert r.json()["name"] == "reused"
    assert r.json()["memory_count"] == 0
    assert search_ids(tenant, "sailing boats", [second]) == []


def test_unknown_cube_is_404(tenant: TenantCtx) -> None:
    missing = str(uuid.uuid4())
    error = assert_error(tenant.http.get(f"/v1/cubes/{missing}"), 404, "not_found")
    assert error["details"] == {"kind": "cube", "id": missing}
    assert_error(tenant.http.delete(f"/v1/cubes/{missing}"), 404, "not_found")


def test_memory_count_counts_non_deleted_memories(tenant: TenantCtx) -> None:
    cube = make_cube(tenant)
    other = make_cube(tenant)
    mems = add_memories(tenant, cube, "one", "two", "three", "four")
    add_memories(tenant, other, "elsewhere")
    assert tenant.http.get(f"/v1/cubes/{cube}").json()["memory_count"] == 4
    assert tenant.http.delete(f"/v1/memories/{mems[0]['id']}").status_code == 200
    assert tenant.http.get(f"/v1/cubes/{cube}").json()["memory_count"] == 3
    counts = {c["id"]: c["memory_count"] for c in tenant.http.get("/v1/cubes").json()["cubes"]}
    assert counts == {cube: 3, other: 1}
    assert tenant.http.post(f"/v1/memories/{mems[0]['id']}/restore").status_code == 200
    assert tenant.http.get(f"/v1/cubes/{cube}").json()["memory_count"] == 4
