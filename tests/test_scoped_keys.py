"""Cube-scoped API keys, on every route of the live server's OpenAPI: a read key for cube A gets 403 on every
write and no 403 on reads; a key scoped to cube A asking for cube B (or an object in it) gets 404. The route
list comes from /openapi.json, so a route added later is covered here or this test fails naming it."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import Json, LiveServer, TenantCtx, add_memories, assert_error, make_cube, new_tenant, sql
from tests.workers.helpers import wait_job

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
NOT_API = {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc", "/healthz", "/readyz"}

# Routes for a whole tenant or for operators: every cube-scoped key is refused (403), whatever its permission.
UNSCOPED_ONLY = {
    ("GET", "/v1/tenants"), ("POST", "/v1/tenants"), ("POST", "/v1/tenants/{tenant_id}/keys"),
    ("GET", "/v1/tenants/{tenant_id}/keys"), ("DELETE", "/v1/keys/{key_id}"), ("POST", "/v1/cubes"),
    ("GET", "/v1/tenants/{tenant_id}/quotas"), ("PUT", "/v1/tenants/{tenant_id}/quotas"),
    ("GET", "/v1/activations/stats"),
    ("GET", "/v1/routing/stats"),
    ("POST", "/v1/cubes/import-archive"), ("POST", "/v1/cubes/{cube_id}/fork"),
}
# POSTs that only read (the rest of the non-GET routes write).
READ_POSTS = {("POST", "/v1/search"), ("POST", "/v1/generate"), ("POST", "/v1/context"), ("POST", "/v1/answer")}

# Bodies that pass validation, so the request reaches the access check; ``ids`` are those of the target cube.
Ids = dict[str, str]
BODIES: dict[tuple[str, str], Callable[[Ids], Json]] = {
    ("POST", "/v1/cubes/{cube_id}/memories"): lambda ids: {"memories": [{"content": "a new fact"}]},
    ("POST", "/v1/cubes/{cube_id}/messages"): lambda ids: {
        "session_id": "s", "messages": [{"role": "user", "content": "hello"}]},
    ("PATCH", "/v1/memories/{memory_id}"): lambda ids: {"content": "changed"},
    ("POST", "/v1/memories/{memory_id}/feedback"): lambda ids: {"signal": "useful"},
    ("PUT", "/v1/cubes/{cube_id}/policy"): lambda ids: {"threshold": 0.2},
    ("PATCH", "/v1/cubes/{cube_id}"): lambda ids: {"forget_policy": "purge"},
    ("POST", "/v1/cubes/{cube_id}/activations"): lambda ids: {"text": "You are a helpful assistant."},
    ("POST", "/v1/search"): lambda ids: {"query": "standup", "cube_ids": [ids["cube_id"]]},
    # Over the server's max_new_tokens: a caller allowed to read gets a 422 without loading the model.
    ("POST", "/v1/generate"): lambda ids: {"prompt": "hi", "cube_id": ids["cube_id"], "max_new_tokens": 4096},
    ("POST", "/v1/tenants"): lambda ids: {"name": f"t-{uuid.uuid4().hex[:8]}"},
    ("PUT", "/v1/tenants/{tenant_id}/quotas"): lambda ids: {"memories": 1},
    ("POST", "/v1/cubes"): lambda ids: {"name": f"c-{uuid.uuid4().hex[:8]}"},
    ("POST", "/v1/context"): lambda ids: {"query": "standup", "cube_ids": [ids["cube_id"]]},
    # Unrelated to every memory: the answer module abstains instead of running a model.
    ("POST", "/v1/answer"): lambda ids: {"query": "xylophone quantum zebra", "cube_ids": [ids["cube_id"]]},
    ("POST", "/v1/cubes/{cube_id}/fork"): lambda ids: {},
    ("POST", "/v1/cubes/{cube_id}/snapshots"): lambda ids: {},
    ("POST", "/v1/cubes/{cube_id}/merge"): lambda ids: {"from_cube_id": ids["cube_id"]},
    ("POST", "/v1/cubes/{cube_id}/fuse"): lambda ids: {"into": "activation"},
    ("POST", "/v1/cubes/{cube_id}/adapters/distill"): lambda ids: {},
}
RAW_BODIES = {("POST", "/v1/cubes/{cube_id}/import"): b'{"type": "header"}\n',
              ("POST", "/v1/cubes/import-archive"): b"not a tar"}
MULTIPART = {("POST", "/v1/cubes/{cube_id}/adapters"): {"adapter_config": ("adapter_config.json", b"{}"),
                                                       "adapter_model": ("adapter_model.safetensors", b"x")}}
QUERIES: dict[tuple[str, str], Callable[[Ids], dict[str, str]]] = {
    ("GET", "/v1/jobs"): lambda ids: {"cube_id": ids["cube_id"]},
}


@dataclass
class World:
    tenant: TenantCtx
    a: Ids
    b: Ids
    read_a: httpx.Client
    admin_a: httpx.Client


def insert_activation(database_url: str, tenant_id: str, cube_id: str) -> str:
    """An activation row (its cache is not needed to check access to it)."""
    activation_id = str(uuid.uuid4())
    sql(database_url, "INSERT INTO activations (id, tenant_id, cube_id, model_id, fingerprint, token_hash, tokens, "
                      "token_ids, source, prefix_text, bytes, tier, precision, status, hits, created_at) VALUES "
                      "(%s, %s, %s, 'm', %s, %s, 1, '\\x01000000', 'text', 'x', 1, 'disk', 'float16', 'active', 0, "
                      "now())",
        (activation_id, tenant_id, cube_id, "f" * 64, hashlib.sha256(activation_id.encode()).hexdigest()))
    return activation_id


def insert_adapter(database_url: str, tenant_id: str, cube_id: str) -> str:
    """An adapter row (its weights are not needed to check access to it)."""
    adapter_id = str(uuid.uuid4())
    sql(database_url, "INSERT INTO adapters (id, tenant_id, cube_id, name, version, base_fingerprint, base_model, "
                      "rank, alpha, target_modules, sha256, size_bytes, source, status, metrics, created_at) VALUES "
                      "(%s, %s, %s, 'a', 1, %s, 'm', 4, 8, ARRAY['q_proj'], %s, 1, 'upload', 'active', '{}', now())",
        (adapter_id, tenant_id, cube_id, "f" * 64, "0" * 64))
    return adapter_id


def objects(t: TenantCtx, database_url: str, name: str) -> Ids:
    """A cube with one of each object a route can address."""
    cube = make_cube(t, name)
    memory = add_memories(t, cube, "The team standup is at nine", "My home address is 42 Elm Street")[0]["id"]
    r = t.http.post(f"/v1/cubes/{cube}/messages",
                    json={"session_id": "s", "messages": [{"role": "user", "content": "Please forget my address."}]})
    assert r.status_code == 201, r.text
    job = t.http.post(f"/v1/cubes/{cube}/consolidate")
    assert job.status_code == 202, job.text
    wait_job(t.http, job.json()["id"])
    snapshot = t.http.post(f"/v1/cubes/{cube}/snapshots", json={})
    assert snapshot.status_code == 201, snapshot.text
    return {"cube_id": cube, "memory_id": memory, "job_id": job.json()["id"],
            "request_id": r.json()["forget_request_id"], "activation_id": insert_activation(database_url, t.id, cube),
            "snapshot_id": snapshot.json()["id"], "adapter_id": insert_adapter(database_url, t.id, cube)}


def scoped_key(t: TenantCtx, cube_ids: list[str], permission: str) -> str:
    r = t.http.post(f"/v1/tenants/{t.id}/keys", json={"cube_ids": cube_ids, "permission": permission})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["cube_ids"] == cube_ids and body["permission"] == permission and body["tenant_id"] == t.id
    return str(body["api_key"])


@pytest.fixture(scope="module")
def world(live_server: LiveServer, admin: httpx.Client) -> Iterator[World]:
    t = new_tenant(live_server, admin)
    db = live_server.settings.database_url or ""
    a, b = objects(t, db, "a"), objects(t, db, "b")
    for ids in (a, b):
        ids["tenant_id"] = t.id
        ids["key_id"] = str(t.http.post(f"/v1/tenants/{t.id}/keys", json={"name": "victim"}).json()["id"])
    read_a = live_server.client(scoped_key(t, [a["cube_id"]], "read"))
    admin_a = live_server.client(scoped_key(t, [a["cube_id"]], "admin"))
    yield World(t, a, b, read_a, admin_a)
    for client in (read_a, admin_a, t.http):
        client.close()


def operations(http: httpx.Client) -> list[tuple[str, str, Json]]:
    spec = http.get("/openapi.json").raise_for_status().json()
    return sorted((method.upper(), path, op) for path, item in spec["paths"].items() if path not in NOT_API
                  for method, op in item.items() if method in HTTP_METHODS)


def call(http: httpx.Client, method: str, path: str, op: Json, ids: Ids) -> httpx.Response:
    key = (method, path)
    params = QUERIES[key](ids) if key in QUERIES else None
    url = path.format(**ids)
    if key in RAW_BODIES:
        media = next(iter(op.get("requestBody", {}).get("content", {})), "application/octet-stream")
        return http.request(method, url, content=RAW_BODIES[key], params=params, headers={"Content-Type": media})
    if key in MULTIPART:
        return http.request(method, url, files=MULTIPART[key], params=params)
    body = BODIES[key](ids) if key in BODIES else None
    return http.request(method, url, json=body, params=params)


def uncovered(ops: list[tuple[str, str, Json]], ids: Ids) -> list[str]:
    """Routes this test cannot call correctly yet: an unknown path parameter, or a required body not in BODIES."""
    missing = []
    for method, path, op in ops:
        try:
            path.format(**ids)
        except KeyError:
            missing.append(f"{method} {path}: unknown path parameter")
            continue
        if op.get("requestBody", {}).get("required") and (method, path) not in BODIES | RAW_BODIES | MULTIPART:
            missing.append(f"{method} {path}: add a valid body to BODIES")
    return missing


def test_every_route_is_covered(world: World) -> None:
    missing = uncovered(operations(world.tenant.http), world.a)
    assert missing == [], "\n".join(missing)


def state(t: httpx.Client, ids: Ids) -> Json:
    """What a write through any route would change."""
    memories = t.get(f"/v1/cubes/{ids['cube_id']}/memories", params={"limit": 500}).json()["memories"]
    return {
        "cube": {k: v for k, v in t.get(f"/v1/cubes/{ids['cube_id']}").json().items() if k != "enrichment_pending"},
        "memories": sorted((m["id"], m["content"], m["status"], m["version"]) for m in memories),
        "policy": t.get(f"/v1/cubes/{ids['cube_id']}/policy").json(),
        "job": t.get(f"/v1/jobs/{ids['job_id']}").json()["status"],
        "forget_requests": t.get(f"/v1/cubes/{ids['cube_id']}/forget-requests").json(),
        "activations": sorted((a["id"], a["status"], a["tier"])
                              for a in t.get(f"/v1/cubes/{ids['cube_id']}/activations").json()["activations"]),
        "snapshots": t.get(f"/v1/cubes/{ids['cube_id']}/snapshots").json(),
        "cubes": sorted(c["id"] for c in t.get("/v1/cubes").json()["cubes"]),
        "adapters": sorted((a["id"], a["status"])
                           for a in t.get(f"/v1/cubes/{ids['cube_id']}/adapters").json()["adapters"]),
    }


def test_a_read_key_writes_nothing_and_reads_everything_on_its_cube(world: World) -> None:
    ops = operations(world.tenant.http)
    before = state(world.tenant.http, world.a)
    wrong: list[str] = []
    for method, path, op in ops:
        if uncovered([(method, path, op)], world.a):
            continue
        r = call(world.read_a, method, path, op, world.a)
        reads = method == "GET" or (method, path) in READ_POSTS
        expected_403 = (method, path) in UNSCOPED_ONLY or not reads
        # A read the key is granted is neither refused nor "not found" (generate answers 422: see BODIES).
        if expected_403 != (r.status_code == 403) or r.status_code == 404 or r.status_code >= 500:
            wrong.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
        elif expected_403:
            assert_error(r, 403, "permission_denied")
    assert wrong == []
    assert state(world.tenant.http, world.a) == before
    assert len(before["memories"]) == 3 and before["forget_requests"]["forget_requests"][0]["status"] == "applied"


def test_a_key_scoped_to_one_cube_finds_nothing_in_another(world: World) -> None:
    ops = operations(world.tenant.http)
    before = state(world.tenant.http, world.b)
    wrong: list[str] = []
    for method, path, op in ops:
        if uncovered([(method, path, op)], world.b) or (method, path) in UNSCOPED_ONLY:
            continue
        if not any(f"{{{name}}}" in path for name in world.b) and (method, path) not in BODIES | QUERIES:
            continue  # no cube named anywhere: the listing tests below
        r = call(world.admin_a, method, path, op, world.b)
        if r.status_code != 404:
            wrong.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
        else:
            assert_error(r, 404, "not_found")
    assert wrong == []
    assert state(world.tenant.http, world.b) == before


def test_unscoped_only_routes_refuse_every_scoped_key(world: World) -> None:
    for method, path in sorted(UNSCOPED_ONLY):
        for http in (world.read_a, world.admin_a):
            assert_error(call(http, method, path, {}, world.a), 403, "permission_denied")


def test_listings_show_only_the_granted_cubes(world: World) -> None:
    a, b = world.a["cube_id"], world.b["cube_id"]
    for http in (world.read_a, world.admin_a):
        assert [c["id"] for c in http.get("/v1/cubes").json()["cubes"]] == [a]
        assert [j["cube_id"] for j in http.get("/v1/jobs").json()["jobs"]] == [a]
        assert_error(http.post("/v1/search", json={"query": "standup", "cube_ids": [a, b]}), 404, "not_found")
        hits = http.post("/v1/search", json={"query": "standup", "cube_ids": [a], "top_k": 1}).json()["results"]
        assert [h["memory"]["id"] for h in hits] == [world.a["memory_id"]]
        generate = {"prompt": "hi", "activation_id": world.b["activation_id"], "max_new_tokens": 4096}
        assert_error(http.post("/v1/generate", json=generate), 404, "not_found")
    # A cube named in a body is checked like one in the path.
    assert_error(world.admin_a.post(f"/v1/cubes/{a}/merge", json={"from_cube_id": b}), 404, "not_found")
    assert sorted(j["cube_id"] for j in world.tenant.http.get("/v1/jobs").json()["jobs"]) == sorted([a, b])


def test_permission_levels_on_the_granted_cube(world: World, live_server: LiveServer) -> None:
    t = world.tenant
    cube = make_cube(t, "levels")
    write = live_server.client(scoped_key(t, [cube], "write"))
    admin_key = live_server.client(scoped_key(t, [cube], "admin"))
    with write, admin_key:
        memory = write.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "Lunch is at noon"}]})
        assert memory.status_code == 201, memory.text
        memory_id = memory.json()["memories"][0]["id"]
        assert write.patch(f"/v1/memories/{memory_id}", json={"content": "Lunch is at one"}).json()["version"] == 2
        assert write.delete(f"/v1/memories/{memory_id}").json()["status"] == "deleted"
        assert write.post(f"/v1/memories/{memory_id}/restore").json()["status"] == "active"
        assert_error(write.delete(f"/v1/memories/{memory_id}", params={"hard": "true"}), 403, "permission_denied")
        assert_error(write.put(f"/v1/cubes/{cube}/policy", json={"threshold": 0.2}), 403, "permission_denied")
        assert_error(write.post(f"/v1/cubes/{cube}/purge"), 403, "permission_denied")
        assert_error(write.delete(f"/v1/cubes/{cube}"), 403, "permission_denied")
        assert admin_key.patch(f"/v1/cubes/{cube}", json={"forget_policy": "purge"}).json()["forget_policy"] == "purge"
        assert admin_key.delete(f"/v1/memories/{memory_id}", params={"hard": "true"}).status_code == 200
        assert admin_key.delete(f"/v1/cubes/{cube}").status_code == 204
        # The cube is gone for the key too: nothing it can reach any more.
        assert_error(admin_key.get(f"/v1/cubes/{cube}"), 404, "not_found")
        assert admin_key.get("/v1/cubes").json() == {"cubes": []}


def test_creating_keys(world: World, live_server: LiveServer, admin: httpx.Client,
                       other_tenant: TenantCtx) -> None:
    t, a = world.tenant, world.a["cube_id"]
    missing = str(uuid.uuid4())
    error = assert_error(t.http.post(f"/v1/tenants/{t.id}/keys", json={"cube_ids": [a, missing]}), 422,
                         "invalid_input")
    assert error["details"] == {"field": "cube_ids", "missing": [missing]}
    foreign = make_cube(other_tenant, "theirs")
    error = assert_error(t.http.post(f"/v1/tenants/{t.id}/keys", json={"cube_ids": [foreign]}), 422, "invalid_input")
    assert error["details"]["missing"] == [foreign]
    assert_error(t.http.post(f"/v1/tenants/{t.id}/keys", json={"permission": "owner"}), 422, "validation_error")
    assert_error(t.http.post(f"/v1/tenants/{t.id}/keys", json={"cube_ids": []}), 422, "validation_error")
    assert_error(t.http.post(f"/v1/tenants/{t.id}/keys", json={"cube_id": [a]}), 422, "validation_error")
    # A tenant key manages its own tenant's keys only; another tenant does not exist for it.
    assert_error(t.http.post(f"/v1/tenants/{other_tenant.id}/keys", json={}), 404, "not_found")
    theirs = admin.post(f"/v1/tenants/{other_tenant.id}/keys", json={}).json()
    assert_error(t.http.delete(f"/v1/keys/{theirs['id']}"), 404, "not_found")
    # The admin key scopes keys too; an unscoped read key reads every cube and writes none.
    created = admin.post(f"/v1/tenants/{t.id}/keys", json={"permission": "read"}).json()
    assert (created["cube_ids"], created["permission"]) == (None, "read")
    with live_server.client(created["api_key"]) as reader:
        assert sorted(c["id"] for c in reader.get("/v1/cubes").json()["cubes"]) == sorted(
            [world.a["cube_id"], world.b["cube_id"]])
        assert_error(reader.post("/v1/cubes", json={"name": "nope"}), 403, "permission_denied")
        assert_error(reader.post(f"/v1/cubes/{a}/fork", json={}), 403, "permission_denied")
        assert_error(reader.post(f"/v1/cubes/{a}/memories", json={"memories": [{"content": "x"}]}), 403,
                     "permission_denied")
        assert reader.get("/v1/activations/stats").status_code == 200
        assert reader.get("/v1/routing/stats").status_code == 200
        assert_error(reader.post(f"/v1/tenants/{t.id}/keys", json={}), 403, "permission_denied")
    # Revoking a shared key ends the sharing.
    key = scoped_key(t, [a], "read")
    key_id = sql(live_server.settings.database_url or "", "SELECT id::text FROM api_keys WHERE key_hash = %s",
                 (hashlib.sha256(key.encode()).hexdigest(),))[0][0]
    assert t.http.delete(f"/v1/keys/{key_id}").status_code == 200
    with live_server.client(key) as revoked:
        assert_error(revoked.get("/v1/cubes"), 401, "unauthenticated")
    audit = sql(live_server.settings.database_url or "",
                "SELECT details->>'permission', details->'cube_ids' FROM audit_log WHERE action = 'key.create' "
                "AND object_id = %s", (key_id,))
    assert audit == [("read", [a])]


