"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

import os

import httpx

from tests.conftest import LiveServer


def test_healthz_needs_no_key(live_server: LiveServer) -> None:
    with live_server.client() as http:
        r = http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["x-request-id"]


def test_readyz_reports_database_and_index(live_server: LiveServer) -> None:
    with live_server.client() as http:
        r = http.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    process = body.pop("process")
    assert body == {"status": "ready", "checks": {"database": True, "index": True}}
    # Which process answered (the live server runs in this one), and how far it applied the change log.
    assert process["pid"] == os.getpid() and process["applied_through"] >= 0


def test_docs_page(live_server: LiveServer) -> None:
    with live_server.client() as http:
        r = http.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in r.text
    assert "/openapi.json" in r.text


def test_openapi_lists_every_route(live_server: LiveServer) -> None:
    with live_server.client() as http:
        r = http.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["info"]["title"] == "memcubed"
    routes = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    expected = {
        ("POST", "/v1/tenants"), ("GET", "/v1/tenants"), ("POST", "/v1/tenants/{tenant_id}/keys"),
        ("DELETE", "/v1/keys/{key_id}"),
        ("POST", "/v1/cubes"), ("GET", "/v1/cubes"), ("GET", "/v1/cubes/{cube_id}"), ("DELETE", "/v1/cubes/{cube_id}"),
        ("POST", "/v1/cubes/{cube_id}/memories"), ("GET", "/v1/cubes/{cube_id}/memories"),
        ("POST", "/v1/cubes/{cube_id}/messages"),
        ("GET", "/v1/cubes/{cube_id}/export"), ("POST", "/v1/cubes/{cube_id}/import"),
        ("GET", "/v1/memories/{memory_id}"), ("PATCH", "/v1/memories/{memory_id}"),
        ("DELETE", "/v1/memories/{memory_id}"), ("POST", "/v1/memories/{memory_id}/restore"),
        ("GET", "/v1/memories/{memory_id}/history"),
        ("POST", "/v1/search"), ("GET", "/healthz"), ("GET", "/readyz"),
    }
    assert expected <= routes, expected - routes
    assert any(s.get("scheme") == "bearer" for s in spec["components"]["securitySchemes"].values())
    search = spec["paths"]["/v1/search"]["post"]
    assert "requestBody" in search


def test_openapi_needs_no_key_and_the_api_does(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        assert http.get("/openapi.json").status_code == 200
        assert http.get("/v1/cubes").status_code == 401
