"""Per-tenant quotas on the live server: each stock quota refuses the write that would pass it (403
``quota_exceeded`` naming the quota, its limit, the use and the request) and writes nothing; an admin's override
raises or lowers a limit; usage is counted exactly; concurrent writers cannot pass a limit together; the context
token cap and the snapshot delete route."""

from __future__ import annotations

import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx

from tests.conftest import (
    Json,
    LiveServer,
    TenantCtx,
    add_memories,
    assert_error,
    list_all,
    make_cube,
    sql,
)
from tests.test_scoped_keys import insert_activation, insert_adapter, scoped_key

NAMES = ["memories", "cubes", "snapshots", "adapter_bytes", "activation_bytes"]


def quotas(http: httpx.Client, tenant_id: str) -> dict[str, Json]:
    r = http.get(f"/v1/tenants/{tenant_id}/quotas")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tenant_id"] == tenant_id and [q["name"] for q in body["quotas"]] == NAMES
    return {q["name"]: q for q in body["quotas"]}


def used(http: httpx.Client, tenant_id: str) -> dict[str, int]:
    return {name: q["used"] for name, q in quotas(http, tenant_id).items()}


def set_quotas(admin: httpx.Client, tenant_id: str, **limits: int) -> dict[str, Json]:
    r = admin.put(f"/v1/tenants/{tenant_id}/quotas", json=limits)
    assert r.status_code == 200, r.text
    return {q["name"]: q for q in r.json()["quotas"]}


def refused(r: httpx.Response, quota: str, limit: int, used_now: int, requested: int) -> None:
    error = assert_error(r, 403, "quota_exceeded")
    assert error["details"] == {"quota": quota, "limit": limit, "used": used_now, "requested": requested}
    assert error["message"] == (f"the tenant's {quota} quota is {limit}: {used_now} used, "
                                f"{requested} more requested")


def test_defaults_usage_and_overrides(tenant: TenantCtx, admin: httpx.Client, live_server: LiveServer) -> None:
    s = live_server.settings
    before = quotas(tenant.http, tenant.id)
    assert before == {
        "memories": {"name": "memories", "limit": s.quota_memories, "used": 0, "default": s.quota_memories,
                     "overridden": False},
        "cubes": {"name": "cubes", "limit": s.quota_cubes, "used": 0, "default": s.quota_cubes, "overridden": False},
        "snapshots": {"name": "snapshots", "limit": s.quota_snapshots, "used": 0, "default": s.quota_snapshots,
                      "overridden": False},
        "adapter_bytes": {"name": "adapter_bytes", "limit": s.quota_adapter_bytes, "used": 0,
                          "default": s.quota_adapter_bytes, "overridden": False},
        "activation_bytes": {"name": "activation_bytes", "limit": s.quota_activation_bytes, "used": 0,
                             "default": s.quota_activation_bytes, "overridden": False},
    }
    assert (s.quota_memories, s.quota_cubes, s.quota_snapshots) == (1_000_000, 1000, 1000)
    r = tenant.http.get(f"/v1/tenants/{tenant.id}/quotas")
    assert r.json()["request_limits"] == {"import_bytes": s.max_import_bytes, "context_tokens": 32_768}

    a, b = make_cube(tenant, "a"), make_cube(tenant, "b")
    add_memories(tenant, a, "Alice likes tea", "Bob plays chess", "Carol runs marathons")
    deleted = add_memories(tenant, b, "Dave reads novels")[0]["id"]
    assert tenant.http.delete(f"/v1/memories/{deleted}").status_code == 200  # no longer active: not counted
    assert tenant.http.post(f"/v1/cubes/{a}/snapshots", json={}).status_code == 201
    db = s.database_url or ""
    insert_adapter(db, tenant.id, a)  # 1 byte each
    insert_activation(db, tenant.id, a)
    assert used(tenant.http, tenant.id) == {"memories": 3, "cubes": 2, "snapshots": 1, "adapter_bytes": 1,
                                            "activation_bytes": 1}
    # A deleted cube's memories, snapshots, adapters and caches no longer count.
    assert tenant.http.delete(f"/v1/cubes/{a}").status_code == 204
    assert used(tenant.http, tenant.id) == {"memories": 0, "cubes": 1, "snapshots": 0, "adapter_bytes": 0,
                                            "activation_bytes": 0}

    got = set_quotas(admin, tenant.id, memories=7, cubes=3)
    assert (got["memories"]["limit"], got["memories"]["overridden"], got["memories"]["default"]) == (7, True,
                                                                                                    s.quota_memories)
    assert (got["cubes"]["limit"], got["snapshots"]["overridden"]) == (3, False)
    assert sql(db, "SELECT action, details FROM audit_log WHERE tenant_id = %s AND action = 'tenant.quotas'",
               (tenant.id,)) == [("tenant.quotas", {"quotas": {"memories": 7, "cubes": 3}})]
    # PUT replaces: what is left out goes back to the default.
    got = set_quotas(admin, tenant.id, snapshots=2)
    assert [got[n]["overridden"] for n in NAMES] == [False, False, True, False, False]
    assert got["memories"]["limit"] == s.quota_memories
    assert_error(admin.put(f"/v1/tenants/{tenant.id}/quotas", json={"memory": 3}), 422, "validation_error")
    assert_error(admin.put(f"/v1/tenants/{tenant.id}/quotas", json={"cubes": -1}), 422, "validation_error")


def test_who_may_read_and_change_quotas(tenant: TenantCtx, other_tenant: TenantCtx, admin: httpx.Client,
                                        live_server: LiveServer) -> None:
    cube = make_cube(tenant)
    missing = str(uuid.uuid4())
    assert_error(tenant.http.get(f"/v1/tenants/{other_tenant.id}/quotas"), 404, "not_found")
    assert_error(admin.get(f"/v1/tenants/{missing}/quotas"), 404, "not_found")
    assert_error(admin.put(f"/v1/tenants/{missing}/quotas", json={}), 404, "not_found")
    # Only the service's admin key changes quotas: not the tenant's own admin key, nor a read or scoped key.
    assert_error(tenant.http.put(f"/v1/tenants/{tenant.id}/quotas", json={"memories": 10**9}), 403,
                 "permission_denied")
    read = admin.post(f"/v1/tenants/{tenant.id}/keys", json={"permission": "read"}).json()["api_key"]
    with live_server.client(read) as reader, live_server.client(scoped_key(tenant, [cube], "admin")) as scoped:
        for http in (reader, scoped):
            assert_error(http.get(f"/v1/tenants/{tenant.id}/quotas"), 403, "permission_denied")
            assert_error(http.put(f"/v1/tenants/{tenant.id}/quotas", json={"memories": 10**9}), 403,
                         "permission_denied")
    assert not quotas(admin, tenant.id)["memories"]["overridden"]


def test_memories_quota_on_every_write(tenant: TenantCtx, admin: httpx.Client) -> None:
    cube = make_cube(tenant)
    set_quotas(admin, tenant.id, memories=3)
    add_memories(tenant, cube, "The office is in Lyon", "Standup is at nine")
    r = tenant.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "Lunch is at noon"},
                                                                          {"content": "Rent is due Friday"}]})
    refused(r, "memories", 3, 2, 2)
    assert len(list_all(tenant, cube)) == 2  # all or nothing
    r = tenant.http.post(f"/v1/cubes/{cube}/messages", json={
        "session_id": "s1", "messages": [{"role": "user", "content": "I moved to Paris"},
                                         {"role": "user", "content": "My sister is a nurse"}]})
    refused(r, "memories", 3, 2, 2)
    export = tenant.http.get(f"/v1/cubes/{cube}/export").content
    r = tenant.http.post(f"/v1/cubes/{cube}/import", content=export, headers={"Content-Type": "application/x-ndjson"})
    refused(r, "memories", 3, 2, 2)
    other = make_cube(tenant)
    refused(tenant.http.post(f"/v1/cubes/{other}/merge", json={"from_cube_id": cube}), "memories", 3, 2, 2)
    assert len(list_all(tenant, cube)) == 2 and list_all(tenant, other) == []

    last = add_memories(tenant, cube, "The car is blue")[0]["id"]
    refused(tenant.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "One more"}]}),
            "memories", 3, 3, 1)
    # Deleting frees a slot; restoring takes it back, and is refused when the slot was taken meanwhile.
    assert tenant.http.delete(f"/v1/memories/{last}").json()["status"] == "deleted"
    add_memories(tenant, cube, "The bike is red")
    refused(tenant.http.post(f"/v1/memories/{last}/restore"), "memories", 3, 3, 1)
    assert tenant.http.get(f"/v1/memories/{last}").json()["status"] == "deleted"
    # Raised by an admin: the same write now passes.
    set_quotas(admin, tenant.id, memories=4)
    assert tenant.http.post(f"/v1/memories/{last}/restore").json()["status"] == "active"
    assert used(tenant.http, tenant.id)["memories"] == 4
    # Lowered under the use: nothing is removed, but nothing more is added.
    set_quotas(admin, tenant.id, memories=1)
    refused(tenant.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "Another"}]}),
            "memories", 1, 4, 1)
    assert len(list_all(tenant, cube, status="active")) == 4


def test_cubes_quota_on_create_fork_and_import(tenant: TenantCtx, admin: httpx.Client) -> None:
    set_quotas(admin, tenant.id, cubes=1)
    cube = make_cube(tenant, "only")
    add_memories(tenant, cube, "The office is in Lyon")
    refused(tenant.http.post("/v1/cubes", json={"name": "second"}), "cubes", 1, 1, 1)
    refused(tenant.http.post(f"/v1/cubes/{cube}/fork", json={}), "cubes", 1, 1, 1)
    archive = tenant.http.get(f"/v1/cubes/{cube}/archive").content
    r = tenant.http.post("/v1/cubes/import-archive", params={"name": "copy"}, content=archive,
                         headers={"Content-Type": "application/x-tar"})
    refused(r, "cubes", 1, 1, 1)
    assert [c["name"] for c in tenant.http.get("/v1/cubes").json()["cubes"]] == ["only"]
    # Room for a cube but not for its memories: the import fails whole.
    set_quotas(admin, tenant.id, cubes=2, memories=1)
    r = tenant.http.post("/v1/cubes/import-archive", params={"name": "copy"}, content=archive,
                         headers={"Content-Type": "application/x-tar"})
    refused(r, "memories", 1, 1, 1)
    assert [c["name"] for c in tenant.http.get("/v1/cubes").json()["cubes"]] == ["only"]
    set_quotas(admin, tenant.id, cubes=2)
    assert tenant.http.post(f"/v1/cubes/{cube}/fork", json={"name": "fork"}).status_code == 201
    assert used(tenant.http, tenant.id)["cubes"] == 2


def test_snapshots_quota_and_delete(tenant: TenantCtx, other_tenant: TenantCtx, admin: httpx.Client,
                                    live_server: LiveServer) -> None:
    set_quotas(admin, tenant.id, snapshots=1)
    cube = make_cube(tenant)
    add_memories(tenant, cube, "The office is in Lyon")
    first = tenant.http.post(f"/v1/cubes/{cube}/snapshots", json={"label": "first"}).json()["id"]
    refused(tenant.http.post(f"/v1/cubes/{cube}/snapshots", json={}), "snapshots", 1, 1, 1)
    # A restore takes a pre_restore snapshot first: refused too, and nothing changed.
    refused(tenant.http.post(f"/v1/cubes/{cube}/snapshots/{first}/restore"), "snapshots", 1, 1, 1)
    assert [s["id"] for s in tenant.http.get(f"/v1/cubes/{cube}/snapshots").json()["snapshots"]] == [first]

    # Delete: write permission, 404 for another tenant's or an unknown one, audited.
    assert_error(other_tenant.http.delete(f"/v1/cubes/{cube}/snapshots/{first}"), 404, "not_found")
    theirs = make_cube(other_tenant)
    assert_error(tenant.http.delete(f"/v1/cubes/{theirs}/snapshots/{first}"), 404, "not_found")
    assert_error(tenant.http.delete(f"/v1/cubes/{cube}/snapshots/{uuid.uuid4()}"), 404, "not_found")
    with live_server.client(scoped_key(tenant, [cube], "read")) as reader:
        assert_error(reader.delete(f"/v1/cubes/{cube}/snapshots/{first}"), 403, "permission_denied")
    with live_server.client(scoped_key(tenant, [cube], "write")) as writer:
        r = writer.delete(f"/v1/cubes/{cube}/snapshots/{first}")
        assert r.status_code == 204 and r.content == b""
    assert tenant.http.get(f"/v1/cubes/{cube}/snapshots").json() == {"snapshots": []}
    assert_error(tenant.http.post(f"/v1/cubes/{cube}/snapshots/{first}/restore"), 404, "not_found")
    db = live_server.settings.database_url or ""
    assert sql(db, "SELECT object_type, details FROM audit_log WHERE action = 'snapshot.delete' AND object_id = %s",
               (first,)) == [("snapshot", {"cube_id": cube, "kind": "manual", "label": "first"})]
    assert sql(db, "SELECT count(*) FROM snapshots WHERE id = %s", (first,)) == [(0,)]
    # The slot is free again.
    assert tenant.http.post(f"/v1/cubes/{cube}/snapshots", json={}).status_code == 201


def test_adapter_and_activation_bytes(tenant: TenantCtx, admin: httpx.Client, live_server: LiveServer) -> None:
    db = live_server.settings.database_url or ""
    cube = make_cube(tenant)
    deleted = insert_adapter(db, tenant.id, cube)
    sql(db, "UPDATE adapters SET status = 'deleted', version = 2 WHERE id = %s", (deleted,))
    insert_adapter(db, tenant.id, cube)  # version 1, active: 1 byte
    set_quotas(admin, tenant.id, adapter_bytes=1)
    refused(tenant.http.post(f"/v1/adapters/{deleted}/restore"), "adapter_bytes", 1, 1, 1)
    assert tenant.http.get(f"/v1/adapters/{deleted}").json()["status"] == "deleted"
    set_quotas(admin, tenant.id, adapter_bytes=2)
    assert tenant.http.post(f"/v1/adapters/{deleted}/restore").json()["status"] == "active"
    assert used(tenant.http, tenant.id)["adapter_bytes"] == 2


def test_activation_bytes_refuse_a_new_kv_cache(tenant: TenantCtx, admin: httpx.Client) -> None:
    """Loads the activation model (the cache's size is known once it is built)."""
    cube = make_cube(tenant)
    set_quotas(admin, tenant.id, activation_bytes=0)
    r = tenant.http.post(f"/v1/cubes/{cube}/activations", json={"text": "You are a helpful assistant."},
                         timeout=600)
    error = assert_error(r, 403, "quota_exceeded")
    requested = error["details"]["requested"]
    assert requested > 0 and error["details"] == {"quota": "activation_bytes", "limit": 0, "used": 0,
                                                  "requested": requested}
    assert tenant.http.get(f"/v1/cubes/{cube}/activations").json() == {"activations": []}
    set_quotas(admin, tenant.id, activation_bytes=requested)
    made = tenant.http.post(f"/v1/cubes/{cube}/activations", json={"text": "You are a helpful assistant."},
                            timeout=600)
    assert made.status_code == 201, made.text
    assert made.json()["bytes"] == requested == used(tenant.http, tenant.id)["activation_bytes"]


def test_concurrent_writers_cannot_pass_the_limit(tenant: TenantCtx, admin: httpx.Client,
                                                  live_server: LiveServer) -> None:
    cube = make_cube(tenant)
    set_quotas(admin, tenant.id, memories=5, cubes=3)
    start = threading.Barrier(10)

    def write(i: int) -> int:
        with live_server.client(tenant.key) as http:
            start.wait()
            r = http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": f"Fact number {i} is {i * 7}"}]})
            return r.status_code

    with ThreadPoolExecutor(10) as pool:
        codes = sorted(pool.map(write, range(10)))
    assert codes == [201] * 5 + [403] * 5
    assert len(list_all(tenant, cube)) == 5

    def create(i: int) -> int:
        with live_server.client(tenant.key) as http:
            start.wait()
            return http.post("/v1/cubes", json={"name": f"racer-{i}"}).status_code

    with ThreadPoolExecutor(10) as pool:
        codes = sorted(pool.map(create, range(10)))
    assert codes == [201] * 2 + [403] * 8
    assert used(tenant.http, tenant.id) == {"memories": 5, "cubes": 3, "snapshots": 0, "adapter_bytes": 0,
                                            "activation_bytes": 0}


def test_context_tokens_are_capped(tenant: TenantCtx, live_server: LiveServer, admin: httpx.Client) -> None:
    cube = make_cube(tenant)
    read = admin.post(f"/v1/tenants/{tenant.id}/keys", json={"permission": "read"}).json()["api_key"]
    with live_server.client(read) as reader:
        for route in ("/v1/context", "/v1/answer"):
            r = reader.post(route, json={"query": "where is the office?", "cube_ids": [cube],
                                         "budget": {"max_tokens": 1_000_000}})
            error = assert_error(r, 413, "payload_too_large")
            assert error["details"] == {"quota": "context_tokens", "limit": 32_768, "requested": 1_000_000}
        r = reader.post("/v1/context", json={"query": "where is the office?", "cube_ids": [cube],
                                             "budget": {"max_tokens": 32_768}})
        assert r.status_code == 200, r.text


def test_quota_refusals_are_counted_in_metrics(tenant: TenantCtx, admin: httpx.Client,
                                               live_server: LiveServer) -> None:
    def counts() -> tuple[float, float]:
        text = httpx.get(f"{live_server.url}/metrics").text
        values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith(("memcubed_refusals_total{", "memcubed_quota_refusals_total{"))}
        return (values['memcubed_refusals_total{kind="quota_exceeded"}'],
                values.get('memcubed_quota_refusals_total{quota="cubes"}', 0.0))

    set_quotas(admin, tenant.id, cubes=0)
    before = counts()
    refused(tenant.http.post("/v1/cubes", json={"name": "x"}), "cubes", 0, 0, 1)
    assert counts() == (before[0] + 1, before[1] + 1)


def test_an_import_is_refused_before_its_body_is_read(tenant: TenantCtx, admin: httpx.Client,
                                                      live_server: LiveServer) -> None:
    """A read key's import gets its 403 while the client is still sending: the body is never buffered."""
    cube = make_cube(tenant)
    read = admin.post(f"/v1/tenants/{tenant.id}/keys", json={"permission": "read"}).json()["api_key"]
    url = urlsplit(live_server.url)
    for path in (f"/v1/cubes/{cube}/import", "/v1/cubes/import-archive"):
        with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
            conn.sendall((f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {read}\r\n"
                          f"Content-Type: application/x-ndjson\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n")
                         .encode() + b"x" * 1024)
            head = conn.recv(65536).decode(errors="replace")  # a timeout here: the server waited for the body
        assert head.startswith("HTTP/1.1 403"), head
        assert '"code":"permission_denied"' in head, head


def test_a_restore_that_would_pass_the_memories_quota_changes_nothing(tenant: TenantCtx, admin: httpx.Client) -> None:
    cube = make_cube(tenant)
    first, second = (m["id"] for m in add_memories(tenant, cube, "The office is in Lyon", "Standup is at nine"))
    snapshot = tenant.http.post(f"/v1/cubes/{cube}/snapshots", json={}).json()["id"]
    for memory_id in (first, second):
        assert tenant.http.delete(f"/v1/memories/{memory_id}").status_code == 200
    add_memories(tenant, cube, "Lunch is at noon")
    set_quotas(admin, tenant.id, memories=1)
    # Afterwards the snapshot's two would be active and the new one archived: 1 active now, 1 more requested.
    refused(tenant.http.post(f"/v1/cubes/{cube}/snapshots/{snapshot}/restore"), "memories", 1, 1, 1)
    assert sorted(m["content"] for m in list_all(tenant, cube, status="active")) == ["Lunch is at noon"]
    assert len(tenant.http.get(f"/v1/cubes/{cube}/snapshots").json()["snapshots"]) == 1  # no pre_restore left
    set_quotas(admin, tenant.id, memories=2)  # exactly enough
    r = tenant.http.post(f"/v1/cubes/{cube}/snapshots/{snapshot}/restore")
    assert r.status_code == 200, r.text
    assert sorted(m["content"] for m in list_all(tenant, cube, status="active")) == ["Standup is at nine",
                                                                                  "The office is in Lyon"]
