"""Admin routes: tenants and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx

from tests.conftest import LiveServer, TenantCtx, assert_error


def test_create_tenant_returns_id_name_and_a_working_key(admin: httpx.Client, live_server: LiveServer) -> None:
    name = f"acme-{uuid.uuid4().hex[:8]}"
    r = admin.post("/v1/tenants", json={"name": name})
    assert r.status_code == 201, r.text
    body = r.json()
    assert {"api_key", "id", "key_id", "name"} <= set(body)
    assert body["name"] == name
    assert uuid.UUID(body["id"]) and uuid.UUID(body["key_id"])
    assert body["api_key"].startswith("mck_")
    with live_server.client(body["api_key"]) as http:
        r = http.get("/v1/cubes")
        assert r.status_code == 200, r.text
        assert r.json() == {"cubes": []}


def test_list_tenants_includes_new_tenants_in_creation_order(admin: httpx.Client) -> None:
    names = [f"list-{uuid.uuid4().hex[:8]}-{i}" for i in range(3)]
    ids = [admin.post("/v1/tenants", json={"name": n}).json()["id"] for n in names]
    r = admin.get("/v1/tenants")
    assert r.status_code == 200, r.text
    tenants = r.json()["tenants"]
    mine = [t for t in tenants if t["id"] in ids]
    assert [t["name"] for t in mine] == names
    assert [t["id"] for t in mine] == ids
    for t in mine:
        assert {"created_at", "id", "name"} <= set(t)
        assert datetime.fromisoformat(t["created_at"]).tzinfo is not None
        assert "api_key" not in t


def test_duplicate_tenant_name_is_409(admin: httpx.Client) -> None:
    name = f"dup-{uuid.uuid4().hex[:8]}"
    assert admin.post("/v1/tenants", json={"name": name}).status_code == 201
    error = assert_error(admin.post("/v1/tenants", json={"name": name}), 409, "conflict")
    assert error["details"] == {"name": name}
    assert sum(t["name"] == name for t in admin.get("/v1/tenants").json()["tenants"]) == 1


def test_create_key_for_tenant_gives_a_second_working_key(admin: httpx.Client, tenant: TenantCtx,
                                                          live_server: LiveServer) -> None:
    r = admin.post(f"/v1/tenants/{tenant.id}/keys", json={"name": "ci"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert {"api_key", "created_at", "id", "scope", "tenant_id"} <= set(body)
    assert body["tenant_id"] == tenant.id
    assert body["scope"] == "tenant"
    assert body["api_key"].startswith("mck_") and body["api_key"] != tenant.key
    r = tenant.http.post("/v1/cubes", json={"name": "seen-by-both"})
    assert r.status_code == 201
    with live_server.client(body["api_key"]) as http:
        r = http.get("/v1/cubes")
        assert r.status_code == 200
        assert [c["name"] for c in r.json()["cubes"]] == ["seen-by-both"]


def test_create_key_without_a_body(admin: httpx.Client, tenant: TenantCtx, live_server: LiveServer) -> None:
    r = admin.post(f"/v1/tenants/{tenant.id}/keys")
    assert r.status_code == 201, r.text
    with live_server.client(r.json()["api_key"]) as http:
        assert http.get("/v1/cubes").status_code == 200


def test_revoked_key_gets_401_and_the_other_key_still_works(admin: httpx.Client, tenant: TenantCtx,
                                                            live_server: LiveServer) -> None:
    created = admin.post(f"/v1/tenants/{tenant.id}/keys").json()
    r = admin.delete(f"/v1/keys/{created['id']}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"id", "revoked_at"} <= set(body)
    assert body["id"] == created["id"]
    assert datetime.fromisoformat(body["revoked_at"]) >= datetime.fromisoformat(created["created_at"])
    with live_server.client(created["api_key"]) as http:
        assert_error(http.get("/v1/cubes"), 401, "unauthenticated")
    assert tenant.http.get("/v1/cubes").status_code == 200
    # Revoking again is harmless and keeps the first revocation time.
    again = admin.delete(f"/v1/keys/{created['id']}")
    assert again.status_code == 200
    assert again.json() == body


def test_revoking_the_default_tenant_key(admin: httpx.Client, live_server: LiveServer) -> None:
    r = admin.post("/v1/tenants", json={"name": f"rev-{uuid.uuid4().hex[:8]}"})
    created = r.json()
    assert admin.delete(f"/v1/keys/{created['key_id']}").status_code == 200
    with live_server.client(created["api_key"]) as http:
        assert_error(http.get("/v1/cubes"), 401, "unauthenticated")


def test_create_key_for_unknown_tenant_is_404(admin: httpx.Client) -> None:
    missing = uuid.uuid4()
    error = assert_error(admin.post(f"/v1/tenants/{missing}/keys"), 404, "not_found")
    assert error["details"] == {"kind": "tenant", "id": str(missing)}


def test_revoke_unknown_key_is_404(admin: httpx.Client) -> None:
    missing = uuid.uuid4()
    error = assert_error(admin.delete(f"/v1/keys/{missing}"), 404, "not_found")
    assert error["details"] == {"kind": "api key", "id": str(missing)}
