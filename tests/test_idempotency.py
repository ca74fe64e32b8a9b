"""Idempotency-Key: a retried POST replays the first result and writes once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import httpx

from tests.conftest import Json, LiveServer, TenantCtx, assert_error, list_all


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"idem-{uuid.uuid4()}"}


def test_retried_memories_post_returns_the_same_body_and_writes_once(tenant: TenantCtx, cube: str) -> None:
    headers = key()
    body = {"memories": [{"content": "retry me", "tags": ["a"]}, {"content": "and me"}]}
    first = tenant.http.post(f"/v1/cubes/{cube}/memories", json=body, headers=headers)
    assert first.status_code == 201, first.text
    second = tenant.http.post(f"/v1/cubes/{cube}/memories", json=body, headers=headers)
    assert second.status_code == 201
    assert second.json() == first.json()
    assert [m["id"] for m in list_all(tenant, cube)] == [m["id"] for m in first.json()["memories"]]
    # Without the key, the same body writes again.
    assert tenant.http.post(f"/v1/cubes/{cube}/memories", json=body).status_code == 201
    assert len(list_all(tenant, cube)) == 4


def test_retried_cube_post(tenant: TenantCtx) -> None:
    headers = key()
    first = tenant.http.post("/v1/cubes", json={"name": "idem-cube"}, headers=headers)
    assert first.status_code == 201
    second = tenant.http.post("/v1/cubes", json={"name": "idem-cube"}, headers=headers)
    assert second.status_code == 201
    assert second.json() == first.json()
    assert [c["id"] for c in tenant.http.get("/v1/cubes").json()["cubes"]] == [first.json()["id"]]
    # Without the key, the duplicate is a conflict.
    assert_error(tenant.http.post("/v1/cubes", json={"name": "idem-cube"}), 409, "conflict")


def test_retried_messages_post(tenant: TenantCtx, cube: str) -> None:
    headers = key()
    body = {"session_id": "s1", "messages": [{"role": "user", "content": "hello", "id": "m1"}]}
    first = tenant.http.post(f"/v1/cubes/{cube}/messages", json=body, headers=headers)
    assert first.status_code == 201
    second = tenant.http.post(f"/v1/cubes/{cube}/messages", json=body, headers=headers)
    assert second.status_code == 201
    assert second.json() == first.json()
    assert len(list_all(tenant, cube)) == 1


def test_retried_tenant_post(admin: httpx.Client, live_server: LiveServer) -> None:
    headers = key()
    name = f"idem-{uuid.uuid4().hex[:8]}"
    first = admin.post("/v1/tenants", json={"name": name}, headers=headers)
    assert first.status_code == 201
    second = admin.post("/v1/tenants", json={"name": name}, headers=headers)
    assert second.status_code == 201
    # The replay is the first response but for the key, which is shown once and never stored.
    assert first.json()["api_key"].startswith("mck_") and first.json()["api_key_withheld"] is False
    assert second.json() == {**first.json(), "api_key": None, "api_key_withheld": True}
    assert sum(t["name"] == name for t in admin.get("/v1/tenants").json()["tenants"]) == 1
    with live_server.client(first.json()["api_key"]) as http:
        assert http.get("/v1/cubes").status_code == 200


def test_retried_key_post(admin: httpx.Client, tenant: TenantCtx) -> None:
    headers = key()
    first = admin.post(f"/v1/tenants/{tenant.id}/keys", json={"name": "k"}, headers=headers)
    second = admin.post(f"/v1/tenants/{tenant.id}/keys", json={"name": "k"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == {**first.json(), "api_key": None, "api_key_withheld": True}


def test_same_key_with_a_different_body_is_409(tenant: TenantCtx, cube: str) -> None:
    headers = key()
    assert tenant.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "one"}]},
                            headers=headers).status_code == 201
    error = assert_error(tenant.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "two"}]},
                                          headers=headers), 409, "conflict")
    assert error["details"] == {"idempotency_key": headers["Idempotency-Key"]}
    # The same key on another route is another request too.
    assert_error(tenant.http.post("/v1/cubes", json={"name": "x"}, headers=headers), 409, "conflict")
    assert [m["content"] for m in list_all(tenant, cube)] == ["one"]
    assert [c["id"] for c in tenant.http.get("/v1/cubes").json()["cubes"]] == [cube]


def test_keys_are_per_api_key(tenant: TenantCtx, other_tenant: TenantCtx, cube: str) -> None:
    """Two callers may pick the same Idempotency-Key without seeing each other's results."""
    headers = key()
    mine = tenant.http.post("/v1/cubes", json={"name": "same"}, headers=headers)
    theirs = other_tenant.http.post("/v1/cubes", json={"name": "same"}, headers=headers)
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["tenant_id"] == other_tenant.id


def test_a_failed_request_is_not_remembered(tenant: TenantCtx, cube: str) -> None:
    headers = key()
    bad = tenant.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "  "}]}, headers=headers)
    assert_error(bad, 422, "invalid_input")
    good = tenant.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "fixed"}]},
                            headers=headers)
    assert good.status_code == 201
    assert [m["content"] for m in list_all(tenant, cube)] == ["fixed"]


def race(n: int, send: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Send ``n`` requests at once (each thread with its own connection)."""
    barrier = threading.Barrier(n)
    results: list[httpx.Response | BaseException] = [RuntimeError("not run")] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = send()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    out = []
    for r in results:
        assert isinstance(r, httpx.Response), r
        out.append(r)
    return out


def test_concurrent_memories_posts_with_the_same_key_write_once(tenant: TenantCtx, cube: str,
                                                                live_server: LiveServer) -> None:
    for attempt in range(3):
        headers = key()
        body: Json = {"memories": [{"content": f"raced memory {attempt} {i}"} for i in range(3)]}

        def send(body: Json = body, headers: dict[str, str] = headers) -> httpx.Response:
            with live_server.client(tenant.key) as http:
                return http.post(f"/v1/cubes/{cube}/memories", json=body, headers=headers)

        responses = race(4, send)
        assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
        assert len({r.text for r in responses}) == 1
        assert len(list_all(tenant, cube)) == 3 * (attempt + 1)


def test_concurrent_cube_posts_with_the_same_key_write_once(tenant: TenantCtx, live_server: LiveServer) -> None:
    for attempt in range(3):
        headers = key()

        def send(name: str = f"raced-{attempt}", headers: dict[str, str] = headers) -> httpx.Response:
            with live_server.client(tenant.key) as http:
                return http.post("/v1/cubes", json={"name": name}, headers=headers)

        responses = race(4, send)
        assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
        assert len({r.json()["id"] for r in responses}) == 1
        names = [c["name"] for c in tenant.http.get("/v1/cubes").json()["cubes"]]
        assert names == [f"raced-{i}" for i in range(attempt + 1)]


def test_concurrent_tenant_posts_with_the_same_key_write_once(admin: httpx.Client, live_server: LiveServer) -> None:
    headers = key()
    name = f"raced-{uuid.uuid4().hex[:8]}"

    def send() -> httpx.Response:
        with live_server.client(live_server.admin_key) as http:
            return http.post("/v1/tenants", json={"name": name}, headers=headers)

    responses = race(4, send)
    assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(t["name"] == name for t in admin.get("/v1/tenants").json()["tenants"]) == 1


def test_concurrent_duplicate_cube_names_without_a_key_give_one_cube_and_409s(tenant: TenantCtx,
                                                                             live_server: LiveServer) -> None:
    def send() -> httpx.Response:
        with live_server.client(tenant.key) as http:
            return http.post("/v1/cubes", json={"name": "contested"})

    responses = race(4, send)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409], [r.text for r in responses]
    for r in responses:
        if r.status_code == 409:
            assert_error(r, 409, "conflict")
    assert [c["name"] for c in tenant.http.get("/v1/cubes").json()["cubes"]] == ["contested"]
