"""Fork (a copy in a new cube) and snapshots: a restore puts the snapshot's state back as new versions, archives
what came later, and is itself undone by restoring the automatic pre-restore snapshot."""

from __future__ import annotations

from typing import Any

from tests.conftest import (
    LiveServer,
    TenantCtx,
    add_memories,
    assert_error,
    list_all,
    make_cube,
    search,
    sql,
    wait_enriched,
)
from tests.lifecycle.helpers import contents, edges, histories


def by_content(t: TenantCtx, cube: str) -> dict[str, tuple[str, int]]:
    return {m["content"]: (m["status"], m["version"]) for m in list_all(t, cube)}


def test_fork_copies_everything_into_an_independent_cube(live_server: LiveServer, tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "origin", description="to fork")
    mems = add_memories(tenant, cube, "Ana plays the cello in an orchestra", "Ana lives in Lisbon since 2019")
    r = tenant.http.patch(f"/v1/memories/{mems[1]['id']}", json={"content": "Ana lives in Porto since 2023"})
    assert r.status_code == 200, r.text
    wait_enriched(tenant, cube)
    r = tenant.http.post(f"/v1/cubes/{cube}/fork", json={})
    assert r.status_code == 201, r.text
    fork = r.json()["cube"]
    assert fork["name"].startswith("origin-fork-") and len(fork["name"]) == len("origin-fork-") + 6
    assert fork["description"] == "to fork" and fork["memory_count"] == 2
    assert contents(tenant, fork["id"]) == contents(tenant, cube)
    assert histories(tenant, fork["id"]) == histories(tenant, cube)
    assert edges(tenant, fork["id"]) == edges(tenant, cube)
    [(provenance,)] = sql(live_server.settings.database_url or "", "select provenance from cubes where id = %s",
                          (fork["id"],))
    assert provenance["forked_from"]["cube_id"] == cube
    # Independent: a change to the fork leaves the origin alone.
    add_memories(tenant, fork["id"], "Ana started learning Japanese")
    assert len(list_all(tenant, fork["id"])) == 3 and len(list_all(tenant, cube)) == 2
    named = tenant.http.post(f"/v1/cubes/{cube}/fork", json={"name": "experiment", "description": "what if"})
    assert named.status_code == 201, named.text
    assert (named.json()["cube"]["name"], named.json()["cube"]["description"]) == ("experiment", "what if")
    assert_error(tenant.http.post(f"/v1/cubes/{cube}/fork", json={"name": "experiment"}), 409, "conflict")


def test_snapshot_restore_and_undo(tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "timeline")
    a, b, _ = add_memories(tenant, cube, "The team meets on Mondays at 10", "The budget for Q3 is 40k euros",
                           "Deploys happen on Thursdays")
    wait_enriched(tenant, cube)
    r = tenant.http.post(f"/v1/cubes/{cube}/snapshots", json={"label": "before the reorg"})
    assert r.status_code == 201, r.text
    snap = r.json()
    assert (snap["label"], snap["kind"], snap["memory_count"], snap["cube_id"]) == ("before the reorg", "manual", 3,
                                                                                      cube)
    assert len(snap["sha256"]) == 64 and snap["size_bytes"] > 0
    # Later changes: an edit, a delete, a new memory.
    assert tenant.http.patch(f"/v1/memories/{a['id']}", json={"content": "The team meets on Tuesdays at 9"}
                             ).status_code == 200
    assert tenant.http.delete(f"/v1/memories/{b['id']}").status_code == 200
    (d,) = add_memories(tenant, cube, "A new intern joins in September")
    later = by_content(tenant, cube)

    r = tenant.http.post(f"/v1/cubes/{cube}/snapshots/{snap['id']}/restore")
    assert r.status_code == 200, r.text
    result = r.json()
    assert {k: result[k] for k in ("changed", "recreated", "archived", "unchanged")} == {
        "changed": 2, "recreated": 0, "archived": 1, "unchanged": 1}
    assert result["snapshot_id"] == snap["id"]
    assert by_content(tenant, cube) == {
        "The team meets on Mondays at 10": ("active", 3), "The budget for Q3 is 40k euros": ("active", 3),
        "Deploys happen on Thursdays": ("active", 1), "A new intern joins in September": ("archived", 2)}
    history = tenant.http.get(f"/v1/memories/{a['id']}/history").json()["versions"]
    assert [v["snapshot"]["content"] for v in history] == ["The team meets on Mondays at 10",
                                                           "The team meets on Tuesdays at 9"]
    assert history[1]["reason"] == f"restore snapshot {snap['id']}"
    hits = [h["memory"]["id"] for h in search(tenant, "when does the team meet?", [cube], top_k=10)]
    assert hits[0] == a["id"] and d["id"] not in hits and b["id"] in hits

    listed = tenant.http.get(f"/v1/cubes/{cube}/snapshots").json()["snapshots"]
    assert [(s["id"], s["kind"]) for s in listed] == [(result["pre_restore_snapshot_id"], "pre_restore"),
                                                       (snap["id"], "manual")]
    assert listed[0]["memory_count"] == 4
    # Undo: restoring the pre-restore snapshot brings back the state the restore replaced (as new versions).
    undo = tenant.http.post(f"/v1/cubes/{cube}/snapshots/{result['pre_restore_snapshot_id']}/restore")
    assert undo.status_code == 200, undo.text
    assert {k: undo.json()[k] for k in ("changed", "recreated", "archived", "unchanged")} == {
        "changed": 3, "recreated": 0, "archived": 0, "unchanged": 1}
    assert {k: s for k, (s, _) in by_content(tenant, cube).items()} == {k: s for k, (s, _) in later.items()}
    hits = [h["memory"]["id"] for h in search(tenant, "who joins in September?", [cube], top_k=10)]
    assert hits[0] == d["id"] and b["id"] not in hits


def test_restore_writes_back_purged_memories(tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "purged")
    (a,) = add_memories(tenant, cube, "The wifi password is on the fridge")
    snap = tenant.http.post(f"/v1/cubes/{cube}/snapshots", json={}).json()
    assert tenant.http.delete(f"/v1/memories/{a['id']}").status_code == 200
    purged = tenant.http.post(f"/v1/cubes/{cube}/purge", json={"statuses": ["deleted"]})
    assert purged.status_code == 200 and purged.json()["purged"] == 1, purged.text
    assert list_all(tenant, cube) == []
    r = tenant.http.post(f"/v1/cubes/{cube}/snapshots/{snap['id']}/restore")
    assert r.status_code == 200, r.text
    assert (r.json()["recreated"], r.json()["changed"]) == (1, 0)
    assert [(m["id"], m["content"], m["status"]) for m in list_all(tenant, cube)] == [
        (a["id"], "The wifi password is on the fridge", "active")]
    assert search(tenant, "where is the wifi password?", [cube], top_k=1)[0]["memory"]["id"] == a["id"]


def test_snapshot_access(live_server: LiveServer, admin: Any, tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "guarded")
    add_memories(tenant, cube, "Only admins may restore this cube")
    snap = tenant.http.post(f"/v1/cubes/{cube}/snapshots", json={}).json()
    keys = {}
    for permission in ("read", "write"):
        r = admin.post(f"/v1/tenants/{tenant.id}/keys", json={"cube_ids": [cube], "permission": permission})
        assert r.status_code == 201, r.text
        keys[permission] = live_server.client(r.json()["api_key"])
    reader, writer = keys["read"], keys["write"]
    assert reader.get(f"/v1/cubes/{cube}/snapshots").status_code == 200
    assert reader.get(f"/v1/cubes/{cube}/archive").status_code == 200
    assert_error(reader.post(f"/v1/cubes/{cube}/snapshots", json={}), 403, "permission_denied")
    assert writer.post(f"/v1/cubes/{cube}/snapshots", json={}).status_code == 201
    assert_error(writer.post(f"/v1/cubes/{cube}/snapshots/{snap['id']}/restore"), 403, "permission_denied")
    assert_error(writer.post(f"/v1/cubes/{cube}/fork", json={}), 403, "permission_denied")  # creates a cube
    assert_error(other_tenant.http.get(f"/v1/cubes/{cube}/snapshots"), 404, "not_found")
    assert_error(other_tenant.http.post(f"/v1/cubes/{cube}/snapshots/{snap['id']}/restore"), 404, "not_found")
    other_cube = make_cube(other_tenant, "theirs")
    assert_error(other_tenant.http.post(f"/v1/cubes/{other_cube}/snapshots/{snap['id']}/restore"), 404,
                 "not_found")
    for client in keys.values():
        client.close()
