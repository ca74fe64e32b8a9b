"""Audit log: every write leaves a row naming the key, the action and the object."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx

from tests.conftest import LiveServer, add_memories, new_tenant, sql


def audit_rows(live_server: LiveServer, where: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return sql(live_server.settings.database_url or "",
               "SELECT action, object_type, object_id, key_id::text, tenant_id::text, details FROM audit_log "
               f"WHERE {where} ORDER BY id", params)


def admin_key_id(live_server: LiveServer) -> str:
    digest = hashlib.sha256((live_server.admin_key or "").encode()).hexdigest()
    rows = sql(live_server.settings.database_url or "", "SELECT id::text FROM api_keys WHERE key_hash = %s",
               (digest,))
    assert len(rows) == 1
    return str(rows[0][0])


def test_every_write_is_audited_with_key_and_object(live_server: LiveServer, admin: httpx.Client) -> None:
    admin_id = admin_key_id(live_server)
    created = admin.post("/v1/tenants", json={"name": f"audited-{uuid.uuid4().hex[:8]}"}).json()
    tenant_id, tenant_key_id = created["id"], created["key_id"]
    extra = admin.post(f"/v1/tenants/{tenant_id}/keys").json()
    assert admin.delete(f"/v1/keys/{extra['id']}").status_code == 200

    with live_server.client(created["api_key"]) as http:
        cube = http.post("/v1/cubes", json={"name": "audited"}).json()["id"]
        r = http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "one"}, {"content": "two"}]})
        mem_ids = [m["id"] for m in r.json()["memories"]]
        r = http.post(f"/v1/cubes/{cube}/messages",
                      json={"session_id": "s", "messages": [{"role": "user", "content": "hi"}]})
        msg_id = r.json()["memories"][0]["id"]
        assert http.patch(f"/v1/memories/{mem_ids[0]}", json={"content": "uno", "reason": "translate"}
                          ).status_code == 200
        assert http.delete(f"/v1/memories/{mem_ids[0]}").status_code == 200
        assert http.post(f"/v1/memories/{mem_ids[0]}/restore").status_code == 200
        target = http.post("/v1/cubes", json={"name": "target"}).json()["id"]
        exported = http.get(f"/v1/cubes/{cube}/export").content
        assert http.post(f"/v1/cubes/{target}/import", content=exported,
                         headers={"Content-Type": "application/x-ndjson"}).status_code == 201
        assert http.delete(f"/v1/cubes/{cube}").status_code == 204
        # Reads leave no rows.
        http.get(f"/v1/cubes/{target}")
        http.get(f"/v1/cubes/{target}/memories")
        http.post("/v1/search", json={"query": "one", "cube_ids": [target]})

    rows = audit_rows(live_server, "tenant_id = %s", (tenant_id,))
    got = [(action, obj_type, obj_id, key_id) for action, obj_type, obj_id, key_id, _, _ in rows]
    assert got == [
        ("tenant.create", "tenant", tenant_id, admin_id),
        ("key.create", "api_key", extra["id"], admin_id),
        ("key.revoke", "api_key", extra["id"], admin_id),
        ("cube.create", "cube", cube, tenant_key_id),
        ("memory.create", "cube", cube, tenant_key_id),
        ("messages.create", "cube", cube, tenant_key_id),
        ("memory.update", "memory", mem_ids[0], tenant_key_id),
        ("memory.delete", "memory", mem_ids[0], tenant_key_id),
        ("memory.restore", "memory", mem_ids[0], tenant_key_id),
        ("cube.create", "cube", target, tenant_key_id),
        ("cube.import", "cube", target, tenant_key_id),
        ("cube.delete", "cube", cube, tenant_key_id),
    ]
    details = {(r[0], r[2]): r[5] for r in rows}
    assert details[("memory.create", cube)] == {"memory_ids": mem_ids}
    assert details[("messages.create", cube)] == {"memory_ids": [msg_id]}
    assert details[("memory.update", mem_ids[0])] == {"version": 2, "reason": "translate"}
    assert details[("memory.delete", mem_ids[0])] == {"version": 3, "reason": "delete"}
    assert details[("memory.restore", mem_ids[0])] == {"version": 4, "reason": "restore"}
    assert details[("cube.import", target)] == {"count": 3}
    assert details[("tenant.create", tenant_id)]["name"] == created["name"]


def test_failed_and_replayed_writes_leave_no_extra_rows(live_server: LiveServer, admin: httpx.Client) -> None:
    t = new_tenant(live_server, admin)
    try:
        cube = t.http.post("/v1/cubes", json={"name": "c"}).json()["id"]
        before = len(audit_rows(live_server, "tenant_id = %s", (t.id,)))
        assert t.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": " "}]}).status_code == 422
        assert t.http.post("/v1/cubes", json={"name": "c"}).status_code == 409
        headers = {"Idempotency-Key": "once"}
        add_memories(t, cube, "replayed", headers=headers)
        add_memories(t, cube, "replayed", headers=headers)
        rows = audit_rows(live_server, "tenant_id = %s", (t.id,))
        assert [r[0] for r in rows[before:]] == ["memory.create"]
    finally:
        t.http.close()
