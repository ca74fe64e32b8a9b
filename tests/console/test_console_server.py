"""The console's server side: the page and its files with a strict CSP, only shipped files, whoami, and the
refusal of cross-origin writes (which SDK and curl clients, sending no Origin, never meet)."""

from __future__ import annotations

import httpx

from app.api.routes.console import CSP, FILES
from tests.conftest import LiveServer, TenantCtx, assert_error

HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def test_the_page_and_its_files_carry_a_strict_csp(live_server: LiveServer) -> None:
    assert CSP == ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                   "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    with httpx.Client(base_url=live_server.url) as http:
        page = http.get("/console")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert {k: page.headers[k] for k in HEADERS} == HEADERS
        # No inline script or style: the CSP would block them.
        assert "<script>" not in page.text and "<style" not in page.text and " style=" not in page.text
        assert '<script type="module" src="/console/js/app.js"></script>' in page.text
        assert http.get("/console/").text == page.text
        script = http.get("/console/js/app.js")
        assert (script.status_code, script.headers["content-type"]) == (200, "text/javascript; charset=utf-8")
        assert {k: script.headers[k] for k in HEADERS} == HEADERS
        assert http.get("/console/console.css").headers["content-type"] == "text/css; charset=utf-8"
        for name in ("../main.py", "js/../../../main.py", "nothing.js", "%2e%2e/config.py"):
            assert_error(http.get(f"/console/{name}"), 404, "not_found")
        paths = http.get("/openapi.json").json()["paths"]
        assert [p for p in paths if p.startswith("/console")] == []
        assert "/v1/whoami" in paths
    assert sorted(FILES) == ["console.css", "index.html", *sorted(
        f"js/{n}.js" for n in ("activation", "api", "app", "common", "cubes", "dom", "graph", "hygiene", "memories",
                               "memory", "ops", "search"))]


def test_whoami_says_what_the_key_may_do(live_server: LiveServer, admin: httpx.Client, tenant: TenantCtx,
                                         cube: str) -> None:
    me = admin.get("/v1/whoami").json()
    assert (me["scope"], me["tenant_id"], me["cube_ids"], me["permission"]) == ("admin", None, None, "admin")
    me = tenant.http.get("/v1/whoami").json()
    assert (me["scope"], me["tenant_id"], me["cube_ids"], me["permission"]) == ("tenant", tenant.id, None, "admin")
    made = tenant.http.post(f"/v1/tenants/{tenant.id}/keys", json={"cube_ids": [cube], "permission": "read"}).json()
    with live_server.client(made["api_key"]) as reader:
        me = reader.get("/v1/whoami").json()
    assert (me["key_id"], me["scope"], me["tenant_id"], me["cube_ids"], me["permission"]) == (
        made["id"], "tenant", tenant.id, [cube], "read")
    with live_server.client() as anonymous:
        assert_error(anonymous.get("/v1/whoami"), 401, "unauthenticated")


def test_a_write_from_another_origin_is_refused(live_server: LiveServer, tenant: TenantCtx) -> None:
    own = live_server.url.removeprefix("http://")
    refused = tenant.http.post("/v1/cubes", json={"name": "x"}, headers={"Origin": "https://evil.example"})
    assert assert_error(refused, 403, "permission_denied")["details"] == {"origin": "https://evil.example"}
    assert_error(tenant.http.post("/v1/cubes", json={"name": "x"}, headers={"Origin": "null"}), 403,
                 "permission_denied")
    assert_error(tenant.http.delete(f"/v1/keys/{tenant.id}", headers={"Origin": f"http://{own}.evil.example"}),
                 403, "permission_denied")
    assert tenant.http.get("/v1/cubes").json()["cubes"] == []
    # Reads with any Origin, same-origin writes, and writes without an Origin (SDKs, curl) all pass.
    assert tenant.http.get("/v1/cubes", headers={"Origin": "https://evil.example"}).status_code == 200
    assert tenant.http.post("/v1/cubes", json={"name": "a"}, headers={"Origin": f"http://{own}"}).status_code == 201
    assert tenant.http.post("/v1/cubes", json={"name": "b"}).status_code == 201
    assert sorted(c["name"] for c in tenant.http.get("/v1/cubes").json()["cubes"]) == ["a", "b"]
