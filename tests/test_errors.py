"""Auth, bad input and the error envelope: the right status and code, never a 500 for a client's mistake."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import (
    Json,
    LiveServer,
    TenantCtx,
    add_memories,
    assert_error,
    list_all,
    validation_fields,
)

KIB = 1024
MIB = 1024 * 1024


# -- auth -------------------------------------------------------------------------------------------------

def tenant_routes(cube: str, memory: str) -> list[tuple[str, str, Any]]:
    """(method, path, json body) of every tenant route, with valid bodies."""
    return [
        ("POST", "/v1/cubes", {"name": "x"}),
        ("GET", "/v1/cubes", None),
        ("GET", f"/v1/cubes/{cube}", None),
        ("DELETE", f"/v1/cubes/{cube}", None),
        ("POST", f"/v1/cubes/{cube}/memories", {"memories": [{"content": "x"}]}),
        ("GET", f"/v1/cubes/{cube}/memories", None),
        ("POST", f"/v1/cubes/{cube}/messages", {"session_id": "s", "messages": [{"role": "user", "content": "x"}]}),
        ("GET", f"/v1/cubes/{cube}/export", None),
        ("POST", f"/v1/cubes/{cube}/import", None),
        ("GET", f"/v1/memories/{memory}", None),
        ("PATCH", f"/v1/memories/{memory}", {"content": "y"}),
        ("DELETE", f"/v1/memories/{memory}", None),
        ("POST", f"/v1/memories/{memory}/restore", None),
        ("GET", f"/v1/memories/{memory}/history", None),
        ("POST", "/v1/search", {"query": "x", "cube_ids": [cube]}),
    ]


def admin_routes(tenant_id: str) -> list[tuple[str, str, Any]]:
    return [
        ("POST", "/v1/tenants", {"name": f"never-{uuid.uuid4().hex[:8]}"}),
        ("GET", "/v1/tenants", None),
        ("POST", f"/v1/tenants/{tenant_id}/keys", None),
        ("DELETE", f"/v1/keys/{uuid.uuid4()}", None),
    ]


def call(http: httpx.Client, method: str, path: str, body: Any, headers: dict[str, str] | None = None
         ) -> httpx.Response:
    return http.request(method, path, json=body, headers=headers)


@pytest.fixture
def memory(tenant: TenantCtx, cube: str) -> str:
    return str(add_memories(tenant, cube, "an untouchable memory")[0]["id"])


@pytest.mark.parametrize("header", [
    None,
    "Token abc",
    "Bearer",
    "Basic dXNlcjpwYXNz",
    "mck_no_scheme",
    "Bearer mck_" + "A" * 43,
    "Bearer " + "x" * 5000,
    "Bearer \u00e9t\u00e9",
])
def test_missing_malformed_or_unknown_key_is_401_on_every_route(live_server: LiveServer, tenant: TenantCtx,
                                                                cube: str, memory: str, header: str | None) -> None:
    # Non-ASCII header values go out as raw UTF-8 bytes, as a careless client would send them.
    headers = {b"Authorization": header.encode()} if header is not None else {}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=60) as http:
        for method, path, body in tenant_routes(cube, memory) + admin_routes(tenant.id):
            r = call(http, method, path, body)
            assert_error(r, 401, "unauthenticated")
            assert r.headers["www-authenticate"] == "Bearer", (method, path)
    # Nothing changed.
    assert tenant.http.get(f"/v1/memories/{memory}").json()["version"] == 1
    assert [c["id"] for c in tenant.http.get("/v1/cubes").json()["cubes"]] == [cube]


def test_revoked_key_is_401_on_every_route(live_server: LiveServer, admin: httpx.Client, tenant: TenantCtx,
                                           cube: str, memory: str) -> None:
    extra = admin.post(f"/v1/tenants/{tenant.id}/keys").json()
    with live_server.client(extra["api_key"]) as http:
        assert http.get(f"/v1/cubes/{cube}").status_code == 200
        assert admin.delete(f"/v1/keys/{extra['id']}").status_code == 200
        for method, path, body in tenant_routes(cube, memory):
            error = assert_error(call(http, method, path, body), 401, "unauthenticated")
            assert error["message"] == "invalid or revoked API key"


def test_tenant_key_on_admin_routes_is_403(tenant: TenantCtx, admin: httpx.Client) -> None:
    before = admin.get("/v1/tenants").json()
    # An unscoped tenant key manages its own tenant's keys (tests/test_scoped_keys.py), never tenants.
    for method, path, body in admin_routes(tenant.id):
        if "/keys" not in path:
            assert_error(call(tenant.http, method, path, body), 403, "permission_denied")
    assert admin.get("/v1/tenants").json() == before


def test_admin_key_on_tenant_routes_is_403(admin: httpx.Client, tenant: TenantCtx, cube: str,
                                           memory: str) -> None:
    for method, path, body in tenant_routes(cube, memory):
        assert_error(call(admin, method, path, body), 403, "permission_denied")
    assert tenant.http.get(f"/v1/memories/{memory}").json()["status"] == "active"
    assert tenant.http.get(f"/v1/cubes/{cube}").status_code == 200


# -- size limits ------------------------------------------------------------------------------------------

def test_memory_over_32_kib_is_413_naming_the_field(tenant: TenantCtx, cube: str) -> None:
    ok = "a" * (32 * KIB)
    body = {"memories": [{"content": "fine"}, {"content": ok + "b"}]}
    error = assert_error(tenant.http.post(f"/v1/cubes/{cube}/memories", json=body), 413, "payload_too_large")
    assert error["details"] == {"field": "memories[1].content", "bytes": 32 * KIB + 1, "limit": 32 * KIB}
    # The limit is in UTF-8 bytes, not characters.
    euro = "\u20ac" * (11 * KIB)  # 33,792 bytes
    error = assert_error(tenant.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": euro}]}),
                         413, "payload_too_large")
    assert error["details"]["bytes"] == 3 * 11 * KIB
    assert list_all(tenant, cube) == []
    # Exactly at the limit is accepted.
    assert add_memories(tenant, cube, ok)[0]["content"] == ok


def test_patch_over_32_kib_is_413(tenant: TenantCtx, cube: str) -> None:
    m = add_memories(tenant, cube, "small")[0]
    error = assert_error(tenant.http.patch(f"/v1/memories/{m['id']}", json={"content": "z" * (32 * KIB + 1)}),
                         413, "payload_too_large")
    assert error["details"]["field"] == "content"
    assert tenant.http.get(f"/v1/memories/{m['id']}").json()["content"] == "small"


def test_batch_over_1000_is_413(tenant: TenantCtx, cube: str) -> None:
    body = {"memories": [{"content": f"m{i}"} for i in range(1001)]}
    error = assert_error(tenant.http.post(f"/v1/cubes/{cube}/memories", json=body), 413, "payload_too_large")
    assert error["details"] == {"count": 1001, "limit": 1000}
    msgs = {"session_id": "s", "messages": [{"role": "user", "content": f"m{i}"} for i in range(1001)]}
    assert_error(tenant.http.post(f"/v1/cubes/{cube}/messages", json=msgs), 413, "payload_too_large")
    assert list_all(tenant, cube) == []


def _big_body() -> bytes:
    body = json.dumps({"memories": [{"content": "x" * (30 * KIB)} for _ in range(36)]}).encode()
    assert len(body) > MIB
    return body


def test_body_over_1_mib_with_content_length_is_413(tenant: TenantCtx, cube: str) -> None:
    body = _big_body()
    r = tenant.http.post(f"/v1/cubes/{cube}/memories", content=body,
                         headers={"Content-Type": "application/json"})
    error = assert_error(r, 413, "payload_too_large")
    assert error["details"] == {"limit": MIB}
    assert r.headers["x-request-id"]
    assert list_all(tenant, cube) == []


def test_chunked_body_over_1_mib_is_413(tenant: TenantCtx, cube: str) -> None:
    body = _big_body()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * KIB):
            yield body[start:start + 64 * KIB]

    r = tenant.http.post(f"/v1/cubes/{cube}/memories", content=chunks(),
                         headers={"Content-Type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert_error(r, 413, "payload_too_large")
    assert list_all(tenant, cube) == []
    # A small chunked body is fine.
    small = json.dumps({"memories": [{"content": "sent in chunks"}]}).encode()
    r = tenant.http.post(f"/v1/cubes/{cube}/memories", content=iter([small[:10], small[10:]]),
                         headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text


def test_request_id_is_echoed_or_made(tenant: TenantCtx) -> None:
    r = tenant.http.get("/v1/cubes", headers={"X-Request-ID": "req-123"})
    assert r.headers["x-request-id"] == "req-123"
    r = tenant.http.get("/v1/cubes")
    assert len(r.headers["x-request-id"]) == 32
    r = tenant.http.get(f"/v1/cubes/{uuid.uuid4()}", headers={"X-Request-ID": "req-404"})
    assert r.status_code == 404
    assert r.headers["x-request-id"] == "req-404"


# -- validation -------------------------------------------------------------------------------------------

def post_memories(t: TenantCtx, cube: str, body: Any) -> httpx.Response:
    return t.http.post(f"/v1/cubes/{cube}/memories", json=body)


@pytest.mark.parametrize(("memory", "field"), [
    ({"content": "x", "memory_type": "dream"}, "memories.0.memory_type"),
    ({"memory_type": "semantic"}, "memories.0.content"),
    ({"content": "x", "colour": "red"}, "memories.0.colour"),
    ({"content": ""}, "memories.0.content"),
    ({"content": 42}, "memories.0.content"),
    ({"content": "x", "importance": 1.5}, "memories.0.importance"),
    ({"content": "x", "importance": -0.1}, "memories.0.importance"),
    ({"content": "x", "tags": "not-a-list"}, "memories.0.tags"),
    ({"content": "x", "tags": [1, 2]}, "memories.0.tags.0"),
    ({"content": "x", "metadata": [1]}, "memories.0.metadata"),
    ({"content": "x", "occurred_at": "last tuesday"}, "memories.0.occurred_at"),
    ({"content": "x", "user_id": "u" * 201}, "memories.0.user_id"),
])
def test_invalid_memory_field_is_422_naming_it(tenant: TenantCtx, cube: str, memory: Json, field: str) -> None:
    error = assert_error(post_memories(tenant, cube, {"memories": [{"content": "good"}, memory]}), 422,
                         "validation_error")
    fields = validation_fields(error)
    assert field.replace("memories.0", "memories.1") in fields, error
    assert field.replace("memories.0", "memories.1") in error["message"]
    assert list_all(tenant, cube) == []


def test_empty_or_missing_batch_is_422(tenant: TenantCtx, cube: str) -> None:
    assert validation_fields(assert_error(post_memories(tenant, cube, {"memories": []}), 422,
                                          "validation_error")) == ["memories"]
    assert validation_fields(assert_error(post_memories(tenant, cube, {}), 422,
                                          "validation_error")) == ["memories"]


def test_blank_content_and_nul_are_422_naming_the_field(tenant: TenantCtx, cube: str) -> None:
    error = assert_error(post_memories(tenant, cube, {"memories": [{"content": " \n\t "}]}), 422, "invalid_input")
    assert error["details"] == {"field": "memories[0].content"}
    error = assert_error(post_memories(tenant, cube, {"memories": [{"content": "a\x00b"}]}), 422, "invalid_input")
    assert error["details"] == {"field": "memories[0].content"}
    error = assert_error(post_memories(tenant, cube, {"memories": [{"content": "ok", "metadata": {"k": "\x00"}}]}),
                         422, "invalid_input")
    assert error["details"] == {"field": "memories[0].metadata"}
    error = assert_error(post_memories(tenant, cube, {"memories": [{"content": "ok", "source": {"\x00": 1}}]}),
                         422, "invalid_input")
    assert error["details"] == {"field": "memories[0].source"}


def test_bad_uuid_in_path_is_422(tenant: TenantCtx) -> None:
    for method, path in [("GET", "/v1/cubes/not-a-uuid"), ("DELETE", "/v1/cubes/123"),
                         ("GET", "/v1/cubes/zzz/memories"), ("GET", "/v1/cubes/zzz/export")]:
        error = assert_error(tenant.http.request(method, path), 422, "validation_error")
        assert validation_fields(error) == ["cube_id"]
    for method, path in [("GET", "/v1/memories/nope"), ("PATCH", "/v1/memories/nope"),
                         ("DELETE", "/v1/memories/nope"), ("POST", "/v1/memories/nope/restore"),
                         ("GET", "/v1/memories/nope/history")]:
        r = tenant.http.request(method, path, json={"content": "x"} if method == "PATCH" else None)
        assert "memory_id" in validation_fields(assert_error(r, 422, "validation_error"))


@pytest.mark.parametrize("cursor", [
    "garbage",
    "!!!",
    base64.urlsafe_b64encode(b"no separator").decode(),
    base64.urlsafe_b64encode(b"2024-01-01T00:00:00+00:00|not-a-uuid").decode(),
    base64.urlsafe_b64encode(b"yesterday|" + str(uuid.uuid4()).encode()).decode(),
    base64.urlsafe_b64encode(b"\xff\xfe|\x00").decode(),
    base64.urlsafe_b64encode(b"a|b|c").decode(),
])
def test_invalid_cursor_is_422(tenant: TenantCtx, cube: str, cursor: str) -> None:
    error = assert_error(tenant.http.get(f"/v1/cubes/{cube}/memories", params={"cursor": cursor}), 422,
                         "invalid_input")
    assert error["details"] == {"field": "cursor", "order": "created"}


def test_bad_list_parameters_are_422(tenant: TenantCtx, cube: str) -> None:
    cases: list[tuple[dict[str, str | int], str]] = [
        ({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"limit": "many"}, "limit"),
        ({"memory_type": "dream"}, "memory_type"), ({"status": "gone"}, "status"),
        ({"occurred_after": "soon"}, "occurred_after"),
    ]
    for params, field in cases:
        error = assert_error(tenant.http.get(f"/v1/cubes/{cube}/memories", params=params), 422,
                             "validation_error")
        assert validation_fields(error) == [field]


def test_malformed_json_is_422(tenant: TenantCtx, cube: str) -> None:
    for raw in (b'{"memories": [', b"not json", b'{"memories": [{"content": "x",}]}'):
        r = tenant.http.post(f"/v1/cubes/{cube}/memories", content=raw, headers={"Content-Type": "application/json"})
        error = assert_error(r, 422, "validation_error")
        assert error["details"]["errors"][0]["type"] == "json_invalid"
    assert list_all(tenant, cube) == []


def test_patch_validation(tenant: TenantCtx, cube: str) -> None:
    m = add_memories(tenant, cube, "patch me")[0]
    url = f"/v1/memories/{m['id']}"
    assert_error(tenant.http.patch(url, json={}), 422, "validation_error")
    assert_error(tenant.http.patch(url, json={"reason": "only a reason"}), 422, "validation_error")
    assert "status" in validation_fields(assert_error(tenant.http.patch(url, json={"status": "deleted"}), 422,
                                                      "validation_error"))
    assert "content" in validation_fields(assert_error(tenant.http.patch(url, json={"content": ""}), 422,
                                                       "validation_error"))
    error = assert_error(tenant.http.patch(url, json={"content": "  "}), 422, "invalid_input")
    assert error["details"] == {"field": "content"}
    assert tenant.http.get(url).json()["version"] == 1


def test_search_validation(tenant: TenantCtx, cube: str) -> None:
    for body, field in [
        ({"cube_ids": [cube]}, "query"),
        ({"query": "", "cube_ids": [cube]}, "query"),
        ({"query": "x", "cube_ids": []}, "cube_ids"),
        ({"query": "x"}, "cube_ids"),
        ({"query": "x", "cube_ids": ["nope"]}, "cube_ids.0"),
        ({"query": "x", "cube_ids": [cube], "top_k": 0}, "top_k"),
        ({"query": "x", "cube_ids": [cube], "top_k": 201}, "top_k"),
        ({"query": "x", "cube_ids": [cube], "mode": "deep"}, "mode"),
        ({"query": "x", "cube_ids": [cube], "filters": {"colour": "red"}}, "filters.colour"),
        ({"query": "x", "cube_ids": [cube], "filters": {"status": "deleted"}}, "filters.status"),
        ({"query": "x", "cube_ids": [cube], "filters": {"memory_type": "dream"}}, "filters.memory_type"),
        ({"query": "x", "cube_ids": [cube], "limit": 3}, "limit"),
    ]:
        error = assert_error(tenant.http.post("/v1/search", json=body), 422, "validation_error")
        assert field in validation_fields(error), (body, error)


def test_unknown_route_and_method(tenant: TenantCtx) -> None:
    assert_error(tenant.http.get("/v1/nothing-here"), 404, "not_found")
    assert_error(tenant.http.put("/v1/cubes"), 405, "method_not_allowed")


# -- batch rollback ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    {"content": "   "},
    {"content": "nul \x00 inside"},
    {"content": "ok", "metadata": {"nul": "\x00"}},
    {"content": "y" * (32 * KIB + 1)},
])
def test_a_batch_with_one_bad_item_writes_nothing(tenant: TenantCtx, cube: str, bad: Json) -> None:
    add_memories(tenant, cube, "already there")
    items = [{"content": f"good item {i}"} for i in range(5)] + [bad]
    r = post_memories(tenant, cube, {"memories": items})
    assert r.status_code in (413, 422), r.text
    remaining = list_all(tenant, cube)
    assert [m["content"] for m in remaining] == ["already there"]
    assert tenant.http.get(f"/v1/cubes/{cube}").json()["memory_count"] == 1


def test_messages_batch_with_one_bad_item_writes_nothing(tenant: TenantCtx, cube: str) -> None:
    r = tenant.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": "s", "messages": [
        {"role": "user", "content": "fine"}, {"role": "assistant", "content": "  "},
    ]})
    error = assert_error(r, 422, "invalid_input")
    assert error["details"] == {"field": "memories[1].content"}
    assert list_all(tenant, cube) == []


# -- never a 500 ------------------------------------------------------------------------------------------

def odd_requests(cube: str, memory: str, tenant_id: str) -> list[tuple[str, str, str, Any]]:
    """(who, method, path, json body) of odd but possible client input."""
    m = f"/v1/cubes/{cube}/memories"
    return [
        ("t", "POST", m, {"memories": [{"content": "x", "user_id": "nul\x00"}]}),
        ("t", "POST", m, {"memories": [{"content": "x", "session_id": "\x00"}]}),
        ("t", "POST", m, {"memories": [{"content": "x", "agent_id": "a\x00"}]}),
        ("t", "POST", m, {"memories": [{"content": "x", "tags": ["t\x00"]}]}),
        ("t", "POST", m, {"memories": [{"content": "x", "tags": ["t" * 201]}]}),
        ("t", "POST", m, {"memories": [{"content": "x", "tags": ["t"] * 101}]}),
        ("t", "POST", m, {"memories": [{"content": "x", "metadata": {"n": 10**40}}]}),
        ("t", "POST", m, {"memories": [{"content": "x", "occurred_at": "0001-01-01T00:00:00+05:00"}]}),
        ("t", "POST", m, {"memories": [{"content": "x", "occurred_at": "9999-12-31T23:59:59-05:00"}]}),
        ("t", "POST", m, {"memories": [{"content": "x", "occurred_at": 10**20}]}),
        ("t", "POST", m, {"memories": [{"content": "x", "importance": None}]}),
        ("t", "POST", m, {"memories": [{"content": "\U0001f600 emoji \u202e rtl \ufeff"}]}),
        ("t", "POST", m, {"memories": "nope"}),
        ("t", "POST", m, [1, 2, 3]),
        ("t", "POST", m, None),
        ("t", "GET", m + "?user_id=%00", None),
        ("t", "GET", m + "?tag=%00", None),
        ("t", "GET", m + "?session_id=" + "s" * 300, None),
        ("t", "GET", m + "?cursor=" + "A" * 600, None),
        ("t", "GET", m + "?occurred_after=0001-01-01T00:00:00Z", None),
        ("t", "POST", "/v1/cubes", {"name": "cube\x00"}),
        ("t", "POST", "/v1/cubes", {"name": "ok-name", "description": "d\x00"}),
        ("t", "POST", "/v1/cubes", {"name": "ok-name-2", "owner_id": "o\x00"}),
        ("t", "POST", "/v1/cubes", {"name": ""}),
        ("t", "POST", "/v1/cubes", {"name": "n" * 201}),
        ("t", "POST", f"/v1/cubes/{cube}/messages", {"session_id": "s\x00", "messages": [
            {"role": "user", "content": "x"}]}),
        ("t", "POST", f"/v1/cubes/{cube}/messages", {"session_id": "s", "user_id": "\x00", "messages": [
            {"role": "user", "content": "x"}]}),
        ("t", "POST", f"/v1/cubes/{cube}/messages", {"session_id": "s", "messages": [
            {"role": "us\x00er", "content": "x"}]}),
        ("t", "POST", f"/v1/cubes/{cube}/messages", {"session_id": "s", "messages": []}),
        ("t", "POST", f"/v1/cubes/{cube}/messages", {"session_id": "s", "messages": [
            {"role": "user", "content": "x", "timestamp": "0001-01-01T00:00:00+01:00"}]}),
        ("t", "PATCH", f"/v1/memories/{memory}", {"content": None}),
        ("t", "PATCH", f"/v1/memories/{memory}", {"memory_type": None}),
        ("t", "PATCH", f"/v1/memories/{memory}", {"tags": None}),
        ("t", "PATCH", f"/v1/memories/{memory}", {"importance": None}),
        ("t", "PATCH", f"/v1/memories/{memory}", {"metadata": None}),
        ("t", "PATCH", f"/v1/memories/{memory}", {"source": None}),
        ("t", "PATCH", f"/v1/memories/{memory}", {"tags": ["\x00"]}),
        ("t", "PATCH", f"/v1/memories/{memory}", {"tags": ["x" * 201]}),
        ("t", "PATCH", f"/v1/memories/{memory}", {"metadata": {"k": "\x00"}}),
        ("t", "PATCH", f"/v1/memories/{memory}", {"reason": "r\x00", "importance": 0.1}),
        ("t", "PATCH", f"/v1/memories/{memory}", {"reason": None, "importance": 0.1}),
        ("t", "POST", "/v1/search", {"query": "q\x00", "cube_ids": [cube]}),
        ("t", "POST", "/v1/search", {"query": "q", "cube_ids": [cube], "filters": {"user_id": "\x00"}}),
        ("t", "POST", "/v1/search", {"query": "q", "cube_ids": [cube], "filters": {"tag": "\x00"}}),
        ("t", "POST", "/v1/search", {"query": "q", "cube_ids": [cube],
                                     "filters": {"occurred_after": "0001-01-01T00:00:00+05:00"}}),
        ("t", "POST", "/v1/search", {"query": "q", "cube_ids": [cube] * 101}),
        ("t", "POST", "/v1/search", {"query": "q" * 9000, "cube_ids": [cube]}),
        ("t", "POST", "/v1/search", {"query": "q", "cube_ids": [cube], "top_k": "ten"}),
        ("a", "POST", "/v1/tenants", {"name": "t\x00"}),
        ("a", "POST", "/v1/tenants", {"name": ""}),
        ("a", "POST", "/v1/tenants", {}),
        ("a", "POST", f"/v1/tenants/{tenant_id}/keys", {"name": "k\x00"}),
        ("a", "POST", f"/v1/tenants/{tenant_id}/keys", {"name": 5}),
        ("a", "POST", "/v1/tenants/nope/keys", None),
        ("a", "DELETE", "/v1/keys/nope", None),
    ]


def test_odd_inputs_never_give_a_500(tenant: TenantCtx, cube: str, admin: httpx.Client) -> None:
    memory = str(add_memories(tenant, cube, "a memory to patch")[0]["id"])
    failures = []
    for who, method, path, body in odd_requests(cube, memory, tenant.id):
        http = tenant.http if who == "t" else admin
        r = http.request(method, path, json=body)
        if r.status_code >= 500:
            failures.append((method, path, body, r.status_code, r.text[:200]))
        elif r.status_code >= 400:
            assert_error(r, r.status_code, r.json()["error"]["code"])
    assert failures == []
    # Every memory written above is readable back.
    for m in list_all(tenant, cube):
        r = tenant.http.get(f"/v1/memories/{m['id']}")
        assert r.status_code == 200, r.text
    r = tenant.http.get(f"/v1/cubes/{cube}/export")
    assert r.status_code == 200


def test_odd_raw_bodies_never_give_a_500(tenant: TenantCtx, cube: str) -> None:
    raws: list[tuple[bytes, str]] = [
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b'{"memories": [{"content": "x", "metadata": {"f": Infinity}}]}', "application/json"),
        (b'{"memories": [{"content": "x", "metadata": {"f": NaN}}]}', "application/json"),
        (b'{"memories": [{"content": "x", "importance": NaN}]}', "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b'{"memories": [{"content": "x"}]}', "text/plain"),
        (b"", "application/json"),
        (b'{"memories": [{"content": "lone \\ud800 surrogate"}]}', "application/json"),
        (b'{"memories": [{"content": "x", "user_id": "\\udfff"}]}', "application/json"),
        (b'{"memories": [{"content": "x", "tags": ["\\ud800"]}]}', "application/json"),
        (b'{"memories": [{"content": "x", "metadata": {"k": "\\ud800"}}]}', "application/json"),
        (b'{"memories": [{"content": "x", "source": {"\\ud800": 1}}]}', "application/json"),
        (b'{"memories": [{"content": "x"}]}', "application/x-www-form-urlencoded"),
    ]
    failures = []
    for raw, ctype in raws:
        r = tenant.http.post(f"/v1/cubes/{cube}/memories", content=raw, headers={"Content-Type": ctype})
        if r.status_code >= 500:
            failures.append((raw[:60], ctype, r.status_code, r.text[:200]))
    assert failures == []
    for m in list_all(tenant, cube):
        assert tenant.http.get(f"/v1/memories/{m['id']}").status_code == 200


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "memories", {"memories": [{"content": "x", "user_id": "nul\x00"}]}, "memories.0.user_id"),
    ("POST", "memories", {"memories": [{"content": "x", "session_id": "\x00"}]}, "memories.0.session_id"),
    ("POST", "memories", {"memories": [{"content": "x", "agent_id": "\x00"}]}, "memories.0.agent_id"),
    ("POST", "memories", {"memories": [{"content": "x", "tags": ["ok", "t\x00"]}]}, "memories.0.tags.1"),
    ("POST", "memories", {"memories": [{"content": "x", "tags": ["t" * 201]}]}, "memories.0.tags.0"),
    ("POST", "memories", {"memories": [{"content": "x", "occurred_at": "0001-01-01T00:00:00+05:00"}]},
     "memories.0.occurred_at"),
    ("POST", "messages", {"session_id": "s\x00", "messages": [{"role": "user", "content": "x"}]}, "session_id"),
    ("POST", "messages", {"session_id": "s", "messages": [{"role": "user", "content": "x", "speaker": "\x00"}]},
     "messages.0.speaker"),
    ("PATCH", "memory", {"content": None}, "content"),
    ("PATCH", "memory", {"memory_type": None}, "memory_type"),
    ("PATCH", "memory", {"tags": None}, "tags"),
    ("PATCH", "memory", {"importance": None}, "importance"),
    ("PATCH", "memory", {"tags": ["x" * 201]}, "tags.0"),
    ("PATCH", "memory", {"tags": ["\x00"]}, "tags.0"),
    ("PATCH", "memory", {"reason": "r\x00", "importance": 0.1}, "reason"),
    ("POST", "cubes", {"name": "cube\x00"}, "name"),
    ("POST", "cubes", {"name": "c", "description": "\x00"}, "description"),
    ("POST", "search", {"query": "q", "filters": {"user_id": "\x00"}}, "filters.user_id"),
    ("POST", "search", {"query": "q", "filters": {"tag": "\x00"}}, "filters.tag"),
    ("POST", "search", {"query": "q", "filters": {"occurred_after": "0001-01-01T00:00:00+05:00"}},
     "filters.occurred_after"),
    ("GET", "list?user_id=%00", None, "user_id"),
    ("GET", "list?tag=%00", None, "tag"),
    ("GET", "list?occurred_before=0001-01-01T01:00:00%2B02:00", None, "occurred_before"),
])
def test_unstorable_values_are_422_naming_the_field(tenant: TenantCtx, cube: str, method: str, path: str,
                                                    body: Json | None, field: str) -> None:
    memory = add_memories(tenant, cube, "before")[0]
    url = {"memories": f"/v1/cubes/{cube}/memories", "messages": f"/v1/cubes/{cube}/messages",
           "memory": f"/v1/memories/{memory['id']}", "cubes": "/v1/cubes", "search": "/v1/search",
           }.get(path, f"/v1/cubes/{cube}/memories?" + path.partition("?")[2])
    if path == "search" and body is not None:
        body = {**body, "cube_ids": [cube]}
    error = assert_error(tenant.http.request(method, url, json=body), 422, "validation_error")
    assert field in validation_fields(error), error
    assert [m["id"] for m in list_all(tenant, cube)] == [memory["id"]]
    assert tenant.http.get(f"/v1/memories/{memory['id']}").json()["version"] == 1


def test_unstorable_json_is_422_naming_the_field(tenant: TenantCtx, cube: str) -> None:
    for raw, field in [
        (b'{"memories": [{"content": "x", "metadata": {"f": Infinity}}]}', "memories[0].metadata"),
        (b'{"memories": [{"content": "x"}, {"content": "x", "source": {"f": NaN}}]}', "memories[1].source"),
        (b'{"memories": [{"content": "x", "metadata": {"k": "\\ud800"}}]}', "memories[0].metadata"),
    ]:
        r = tenant.http.post(f"/v1/cubes/{cube}/memories", content=raw,
                             headers={"Content-Type": "application/json"})
        error = assert_error(r, 422, "invalid_input")
        assert error["details"] == {"field": field}
    r = tenant.http.post(f"/v1/cubes/{cube}/memories", content=b'{"memories": [{"content": "lone \\ud800"}]}',
                         headers={"Content-Type": "application/json"})
    assert validation_fields(assert_error(r, 422, "validation_error")) == ["memories.0.content"]
    assert list_all(tenant, cube) == []


def test_occurred_at_is_kept_in_utc(tenant: TenantCtx, cube: str) -> None:
    m = add_memories(tenant, cube, {"content": "x", "occurred_at": "2024-02-29T23:30:00-03:00"})[0]
    assert m["occurred_at"] == "2024-03-01T02:30:00Z"
    assert tenant.http.get(f"/v1/memories/{m['id']}").json()["occurred_at"] == "2024-03-01T02:30:00Z"
