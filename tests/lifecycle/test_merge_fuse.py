"""Merge runs another cube's memories through admission (duplicates merged, not doubled) and reports counts;
fuse queues the job that turns plaintext into activation or parametric memory."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer, TenantCtx, add_memories, assert_error, list_all, make_cube, sql


def test_merge_admits_new_memories_and_merges_duplicates(live_server: LiveServer, tenant: TenantCtx) -> None:
    target = make_cube(tenant, "target")
    source = make_cube(tenant, "source")
    (tea,) = add_memories(tenant, target, "Alice drinks green tea every morning")
    add_memories(tenant, target, "Bob plays chess on Sundays")
    add_memories(tenant, source, "Alice drinks green tea every morning", "Carol swims in the lake at dawn",
                 {"content": "Dana's flight lands at 18:40 on Friday", "user_id": "dana", "tags": ["travel"],
                  "metadata": {"gate": "B12"}, "importance": 0.8})
    # What admission refuses is never stored, so the source holds no filler to merge; archived ones stay behind.
    (gone,) = add_memories(tenant, source, "An archived thought that stays behind")
    assert tenant.http.delete(f"/v1/memories/{gone['id']}").status_code == 200

    r = tenant.http.post(f"/v1/cubes/{target}/merge", json={"from_cube_id": source})
    assert r.status_code == 200, r.text
    assert r.json() == {"from_cube_id": source, "considered": 3, "admitted": 2, "merged": 1, "rejected": 0}
    active = {m["content"]: m for m in list_all(tenant, target, status="active")}
    assert sorted(active) == [
        "Alice drinks green tea every morning", "Bob plays chess on Sundays", "Carol swims in the lake at dawn",
        "Dana's flight lands at 18:40 on Friday"]
    duplicates = list_all(tenant, target, status="archived")
    assert [(m["content"], m["merged_into"]) for m in duplicates] == [("Alice drinks green tea every morning",
                                                                      tea["id"])]
    dana = active["Dana's flight lands at 18:40 on Friday"]
    assert (dana["user_id"], dana["tags"], dana["metadata"], dana["importance"]) == ("dana", ["travel"],
                                                                                    {"gate": "B12"}, 0.8)
    # Merging again doubles nothing: every item is now a duplicate.
    again = tenant.http.post(f"/v1/cubes/{target}/merge", json={"from_cube_id": source}).json()
    assert (again["admitted"], again["merged"], again["rejected"]) == (0, 3, 0)
    assert len(list_all(tenant, target, status="active")) == 4
    assert len(list_all(tenant, source)) == 4  # the source is untouched
    [(provenance,)] = sql(live_server.settings.database_url or "", "select provenance from cubes where id = %s",
                          (target,))
    assert [(m["from_cube_id"], m["admitted"], m["merged"]) for m in provenance["merged_from"]] == [
        (source, 2, 1), (source, 0, 3)]


def test_merge_refusals(live_server: LiveServer, admin: httpx.Client, tenant: TenantCtx,
                        other_tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "one")
    theirs = make_cube(other_tenant, "theirs")
    hidden = make_cube(tenant, "hidden")
    r = admin.post(f"/v1/tenants/{tenant.id}/keys", json={"cube_ids": [cube], "permission": "write"})
    with live_server.client(r.json()["api_key"]) as scoped:  # may write here, cannot see the other cube
        assert_error(scoped.post(f"/v1/cubes/{cube}/merge", json={"from_cube_id": hidden}), 404, "not_found")
    assert_error(tenant.http.post(f"/v1/cubes/{cube}/merge", json={"from_cube_id": cube}), 422, "invalid_input")
    assert_error(tenant.http.post(f"/v1/cubes/{cube}/merge", json={"from_cube_id": theirs}), 404, "not_found")
    assert_error(tenant.http.post(f"/v1/cubes/{cube}/merge", json={"from": cube}), 422, "validation_error")
    empty = make_cube(tenant, "empty")
    r = tenant.http.post(f"/v1/cubes/{cube}/merge", json={"from_cube_id": empty})
    assert r.json() == {"from_cube_id": empty, "considered": 0, "admitted": 0, "merged": 0, "rejected": 0}


def test_fuse_queues_the_right_job(tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "fused")
    too_few = tenant.http.post(f"/v1/cubes/{cube}/fuse", json={"into": "parametric"})
    assert assert_error(too_few, 422, "invalid_input")["details"] == {"field": "memory_filter", "memories": 0}
    add_memories(tenant, cube, "Kofi teaches maths at the high school", "Kofi's brother lives in Kumasi",
                 "Kofi runs five kilometres before breakfast")
    r = tenant.http.post(f"/v1/cubes/{cube}/fuse", json={"into": "parametric", "name": "kofi", "steps": 1,
                                                          "rank": 4})
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    tenant.http.post(f"/v1/jobs/{job['id']}/cancel")  # spare the shared test machine a training run
    assert (r.json()["into"], job["kind"], job["cube_id"], job["params"]) == (
        "parametric", "distill", cube, {"name": "kofi", "steps": 1, "rank": 4})
    assert_error(tenant.http.post(f"/v1/cubes/{cube}/fuse", json={"into": "parametric", "rank": 1000}),
                 422, "validation_error")  # the distill route's own bounds
    assert_error(tenant.http.post(f"/v1/cubes/{cube}/fuse", json={"into": "parametric", "max_tokens": 64}),
                 422, "validation_error")
    assert_error(tenant.http.post(f"/v1/cubes/{cube}/fuse", json={"into": "activation", "steps": 3}),
                 422, "validation_error")
    assert_error(tenant.http.post(f"/v1/cubes/{cube}/fuse", json={"into": "kv"}), 422, "validation_error")
