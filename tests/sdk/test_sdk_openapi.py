"""The SDK covers exactly the server's operations: a route added to the service without an SDK method (or
an SDK route the service dropped) fails here, so later issues cannot forget the SDK."""

from __future__ import annotations

import asyncio
import re

import memcubed
from memcubed._routes import ROUTES
from memcubed.mcp import AGENT_ROUTES, TOOL_ROUTES, build_server, shared_client

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


def test_every_mcp_tool_maps_to_a_route_and_every_agent_route_has_a_tool() -> None:
    """MCP tools call SDK routes only; a route meant for agents that no tool reaches fails here, by name."""
    sdk = {(method, _shape(path)) for method, path in ROUTES}
    tools = {tool.name for tool in asyncio.run(build_server(shared_client(memcubed.AsyncClient())).list_tools())}
    assert sorted(tools) == sorted(TOOL_ROUTES), "every MCP tool must list the routes it calls in TOOL_ROUTES"
    unknown = sorted((tool, route) for tool, routes in TOOL_ROUTES.items() for route in routes
                     if (route[0], _shape(route[1])) not in sdk)
    assert unknown == [], "MCP tools calling routes the SDK does not have"
    reached = {(method, _shape(path)) for routes in TOOL_ROUTES.values() for method, path in routes}
    without_tool = sorted(f"{method} {path}" for method, path in AGENT_ROUTES
                          if (method, _shape(path)) not in reached)
    assert without_tool == [], "routes meant for agents without an MCP tool"
