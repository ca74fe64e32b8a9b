"""The routes the console needed: rename a cube, list a tenant's keys, the timeline by event time with a speaker
filter, and the forgetting policy's preview; over HTTP and through the SDK."""

from __future__ import annotations

from typing import Any

import httpx
import memcubed
import pytest

from tests.conftest import LiveServer, TenantCtx, assert_error, make_cube, search, sql

Json = dict[str, Any]


def sdk(live_server: LiveServer, key: str) -> memcubed.Client:
    return memcubed.Client(live_server.url, api_key=key, max_retries=0)


def key_for(t: TenantCtx, live_server: LiveServer, **body: Any) -> str:
    r = t.http.post(f"/v1/tenants/{t.id}/keys", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["api_key"])


def test_rename_a_cube_and_a_taken_name_is_a_conflict(live_server: LiveServer, tenant: TenantCtx) -> None:
    a, b = make_cube(tenant, "alice"), make_cube(tenant, "bob")
    r = tenant.http.patch(f"/v1/cubes/{a}", json={"name": "alice-2"})
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["forget_policy"]) == ("alice-2", "archive")
    assert tenant.http.get(f"/v1/cubes/{a}").json()["name"] == "alice-2"
    error = assert_error(tenant.http.patch(f"/v1/cubes/{a}", json={"name": "bob"}), 409, "conflict")
    assert error["details"] == {"name": "bob"}
    assert tenant.http.patch(f"/v1/cubes/{a}", json={"name": "alice-2"}).status_code == 200  # its own name
    assert_error(tenant.http.patch(f"/v1/cubes/{a}", json={"name": ""}), 422, "validation_error")
    writer = live_server.client(key_for(tenant, live_server, permission="write"))
    assert_error(writer.patch(f"/v1/cubes/{a}", json={"name": "x"}), 403, "permission_denied")
    assert tenant.http.delete(f"/v1/cubes/{b}").status_code == 204  # a deleted cube frees its name
    with sdk(live_server, tenant.key) as client:
        renamed = client.cubes.update(a, name="bob")
        assert (renamed.id, renamed.name) == (a, "bob")
        with pytest.raises(memcubed.ConflictError):
            client.cubes.update(make_cube(tenant, "carol"), name="bob")
    names = sorted(c["name"] for c in tenant.http.get("/v1/cubes").json()["cubes"])
    assert names == ["bob", "carol"]
    audited = sql(live_server.settings.database_url or "", "SELECT details->>'name' FROM audit_log WHERE "
                  "action = 'cube.update' AND object_id = %s ORDER BY id", (a,))
    assert audited == [("alice-2",), ("alice-2",), ("bob",)]


def test_list_a_tenants_keys_without_the_keys(live_server: LiveServer, admin: httpx.Client,
                                              tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "shared")
    scoped = tenant.http.post(f"/v1/tenants/{tenant.id}/keys",
                              json={"name": "reader", "cube_ids": [cube], "permission": "read"}).json()
    revoked = tenant.http.post(f"/v1/tenants/{tenant.id}/keys", json={"name": "old"}).json()
    gone = tenant.http.delete(f"/v1/keys/{revoked['id']}").json()
    r = admin.get(f"/v1/tenants/{tenant.id}/keys")
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    assert [sorted(k) for k in keys] == [["created_at", "cube_ids", "id", "name", "permission", "revoked_at"]] * 3
    assert [(k["name"], k["cube_ids"], k["permission"], k["revoked_at"] is not None) for k in keys] == [
        ("default", None, "admin", False), ("reader", [cube], "read", False), ("old", None, "admin", True)]
    assert [k["id"] for k in keys[1:]] == [scoped["id"], revoked["id"]]
    assert keys[1]["created_at"] == scoped["created_at"] and keys[2]["revoked_at"] == gone["revoked_at"]
    for raw in (tenant.key, scoped["api_key"], revoked["api_key"], tenant.key[:12]):
        assert raw not in r.text
    # The tenant's own unscoped admin key sees the same list; a scoped or a read key is refused, another
    # tenant's keys are not found.
    assert tenant.http.get(f"/v1/tenants/{tenant.id}/keys").json() == r.json()
    reader = live_server.client(scoped["api_key"])
    assert_error(reader.get(f"/v1/tenants/{tenant.id}/keys"), 403, "permission_denied")
    read_all = live_server.client(key_for(tenant, live_server, permission="read"))
    assert_error(read_all.get(f"/v1/tenants/{tenant.id}/keys"), 403, "permission_denied")
    assert_error(tenant.http.get(f"/v1/tenants/{other_tenant.id}/keys"), 404, "not_found")
    assert_error(admin.get("/v1/tenants/00000000-0000-0000-0000-000000000000/keys"), 404, "not_found")
    with sdk(live_server, tenant.key) as client:
        listed = client.keys.list(tenant.id)
    assert [(k.id, k.name, k.permission, k.cube_ids) for k in listed][:2] == [
        (keys[0]["id"], "default", "admin", None), (scoped["id"], "reader", "read", [cube])]
    assert listed[2].revoked_at is not None and listed[0].revoked_at is None


def conversation(t: TenantCtx, cube: str) -> dict[str, str]:
    """Turns written out of event order, by two speakers, plus one memory with no event time."""
    turns = [("Mia", "I adopted a dog named Biscuit", "2024-03-02T10:00:00Z"),
             ("Leo", "Biscuit is a beagle, right?", "2024-03-01T09:00:00Z"),
             ("Mia", "Yes, and he steals socks", "2024-03-03T08:00:00Z"),
             ("Leo", "Socks are his favourite toy", "2024-03-01T09:00:00Z")]
    ids: dict[str, str] = {}
    for speaker, content, at in turns:  # one request each: written (created_at) in list order
        r = t.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": "s1", "messages": [
            {"role": "user", "speaker": speaker, "content": content, "timestamp": at}]})
        assert r.status_code == 201, r.text
        ids[content] = r.json()["memories"][0]["id"]
    r = t.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "Mia lives in Porto"}]})
    ids["Mia lives in Porto"] = r.json()["memories"][0]["id"]
    return ids


def contents(t: TenantCtx, cube: str, limit: int, **params: str) -> list[str]:
    """Every page of a listing, ``limit`` at a time."""
    out: list[str] = []
    cursor = None
    while True:
        r = t.http.get(f"/v1/cubes/{cube}/memories", params={**params, "limit": limit,
                                                              **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        out += [m["content"] for m in r.json()["memories"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


def test_the_timeline_by_event_time_and_speaker(live_server: LiveServer, tenant: TenantCtx) -> None:
    cube = make_cube(tenant)
    conversation(tenant, cube)
    written = ["I adopted a dog named Biscuit", "Biscuit is a beagle, right?", "Yes, and he steals socks",
               "Socks are his favourite toy", "Mia lives in Porto"]
    # Event time, ties by write order; a memory without one takes its write time (today: last).
    by_event = ["Biscuit is a beagle, right?", "Socks are his favourite toy", "I adopted a dog named Biscuit",
                "Yes, and he steals socks", "Mia lives in Porto"]
    for limit in (1, 2, 500):
        assert contents(tenant, cube, limit) == written
        assert contents(tenant, cube, limit, order="created") == written
        assert contents(tenant, cube, limit, order="event") == by_event
    assert contents(tenant, cube, 1, order="event", speaker="Mia") == [
        "I adopted a dog named Biscuit", "Yes, and he steals socks"]
    assert contents(tenant, cube, 1, speaker="Leo") == ["Biscuit is a beagle, right?", "Socks are his favourite toy"]
    assert contents(tenant, cube, 10, speaker="Nobody") == []
    hits = search(tenant, "the dog", [cube], filters={"speaker": "Leo"})
    assert sorted(h["memory"]["content"] for h in hits) == sorted(["Biscuit is a beagle, right?",
                                                                   "Socks are his favourite toy"])
    # A cursor pages only the order it came from.
    created_cursor = tenant.http.get(f"/v1/cubes/{cube}/memories", params={"limit": 1}).json()["next_cursor"]
    event_cursor = tenant.http.get(f"/v1/cubes/{cube}/memories",
                                   params={"limit": 1, "order": "event"}).json()["next_cursor"]
    for cursor, order in ((created_cursor, "event"), (event_cursor, "created")):
        error = assert_error(tenant.http.get(f"/v1/cubes/{cube}/memories", params={"cursor": cursor, "order": order}),
                             422, "invalid_input")
        assert error["details"] == {"field": "cursor", "order": order}
    assert_error(tenant.http.get(f"/v1/cubes/{cube}/memories", params={"order": "random"}), 422, "validation_error")
    with sdk(live_server, tenant.key) as client:
        assert [m.content for m in client.memories.list(cube, order="event", page_size=2)] == by_event
        assert [m.content for m in client.memories.list(cube, speaker="Mia", order="event", page_size=1)] == [
            "I adopted a dog named Biscuit", "Yes, and he steals socks"]


def test_the_policy_preview_reads_only_and_respects_the_cube_scope(live_server: LiveServer, tenant: TenantCtx,
                                                                    other_tenant: TenantCtx) -> None:
    cube = make_cube(tenant)
    ids = conversation(tenant, cube)
    r = tenant.http.get(f"/v1/cubes/{cube}/policy/preview")
    assert r.status_code == 200, r.text
    preview = r.json()
    # The default policy keeps what is younger than a day.
    assert (preview["active"], preview["considered"], preview["total"], preview["memories"]) == (5, 0, 0, [])
    assert preview["policy"]["is_default"] is True and preview["cube_id"] == cube
    tenant.http.put(f"/v1/cubes/{cube}/policy", json={"max_active": 3, "threshold": 0.0, "min_age_hours": 0})
    # Leo's turns are the oldest, and marked wrong: they retain least.
    for content in ("Biscuit is a beagle, right?", "Socks are his favourite toy"):
        assert tenant.http.post(f"/v1/memories/{ids[content]}/feedback", json={"signal": "wrong"}).status_code == 200
    preview = tenant.http.get(f"/v1/cubes/{cube}/policy/preview").json()
    assert (preview["active"], preview["considered"], preview["total"]) == (5, 5, 2)
    assert sorted(x["memory"]["id"] for x in preview["memories"]) == sorted(
        [ids["Biscuit is a beagle, right?"], ids["Socks are his favourite toy"]])
    assert all(x["reason"].endswith("over the cube's max_active of 3") for x in preview["memories"])
    assert [m["status"] for m in tenant.http.get(f"/v1/cubes/{cube}/memories").json()["memories"]] == ["active"] * 5
    assert_error(other_tenant.http.get(f"/v1/cubes/{cube}/policy/preview"), 404, "not_found")
    assert_error(tenant.http.get(f"/v1/cubes/{cube}/policy/preview", params={"limit": 0}), 422, "validation_error")
    with sdk(live_server, tenant.key) as client:
        got = client.cubes.preview_policy(cube, limit=1)
    assert (got.total, len(got.memories), got.memories[0].memory.id) == (2, 1, preview["memories"][0]["memory"]["id"])
    assert got.memories[0].retention == preview["memories"][0]["retention"]


def test_paging_is_exact_when_memories_share_a_write_time(tenant: TenantCtx) -> None:
    """An import keeps the exported times: importing one export twice gives pairs with the same created_at,
    and a page boundary between them must skip neither (the cursor compares the whole sort key)."""
    source, target = make_cube(tenant), make_cube(tenant)
    tenant.http.post(f"/v1/cubes/{source}/memories", json={"memories": [
        {"content": f"fact number {i}"} for i in range(3)]})
    export = tenant.http.get(f"/v1/cubes/{source}/export").content
    for _ in range(2):
        r = tenant.http.post(f"/v1/cubes/{target}/import", content=export,
                             headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 201, r.text
    expected = sorted(f"fact number {i}" for i in range(3) for _ in range(2))
    for order in ("created", "event"):
        for limit in (1, 2, 3):
            assert sorted(contents(tenant, target, limit, order=order)) == expected, (order, limit)
