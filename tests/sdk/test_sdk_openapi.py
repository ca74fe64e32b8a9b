"""The SDK covers exactly the server's operations: a route added to the service without an SDK method (or
an SDK route the service dropped) fails here, so later issues cannot forget the SDK."""

from __future__ import annotations

import re

import memcubed
from memcubed._routes import ROUTES

from tests.sdk.sdk_helpers import LiveTenant

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
NOT_API = {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}


def _shape(path: str) -> str:
    """Path parameters compared by position, not by name: ``/v1/cubes/{id}`` == ``/v1/cubes/{cube_id}``."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_openapi_operation_has_an_sdk_method(live_tenant: LiveTenant) -> None:
    with memcubed.Client(live_tenant.url) as client:
        spec = client._http.get("/openapi.json").raise_for_status().json()
    server = {
        (method.upper(), _shape(path))
        for path, item in spec["paths"].items()
        if path not in NOT_API
        for method in item
        if method in HTTP_METHODS
    }
    sdk = {(method, _shape(path)) for method, path in ROUTES}
    assert len(sdk) == len(ROUTES), "two ROUTES entries differ only in parameter names"
    assert sorted(server - sdk) == [], (
        "server operations without an SDK method: add them to the SDK and ROUTES"
    )
    assert sorted(sdk - server) == [], "SDK routes the server no longer has"
