"""The MCP server over streamable HTTP at ``/mcp``, in the service's own process.

The tools are the SDK's (``memcubed.mcp``): each calls one REST route, here in-process through
``httpx.ASGITransport`` on this same app, with the caller's own ``Authorization`` header. So an MCP call is
authenticated, scoped, validated and audited exactly as the REST call it wraps (a read key calling a
writing tool gets the REST 403, as a tool error), and the MCP layer needs nothing from the services.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import memcubed
from fastapi import FastAPI
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from memcubed.mcp import build_server

PATH = "/mcp"
# Stateless mode opens and closes a transport per request, and logs that at INFO: once a request is noise.
logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
FORWARDED = ("authorization", "x-request-id")


def mount(app: FastAPI) -> AbstractAsyncContextManager[None]:
    """Route ``/mcp`` to the MCP server; the returned context manager runs it (enter it in the lifespan)."""
    transport = httpx.ASGITransport(app=app)

    @asynccontextmanager
    async def caller_client(ctx: Context) -> AsyncIterator[memcubed.AsyncClient]:
        headers = ctx.headers or {}
        forwarded = {name: headers[name] for name in FORWARDED if name in headers}
        # api_key="" so that a call without a key stays without one (never MEMCUBED_API_KEY from the env).
        async with memcubed.AsyncClient("http://memcubed.internal", api_key="", headers=forwarded,
                                        transport=transport, max_retries=0) as client:
            yield client

    server = build_server(caller_client)
    # Stateless JSON: any worker process answers any request, no session affinity. Keys, not the Host
    # header, protect this endpoint, so DNS-rebinding checks (meant for unauthenticated local servers) are off.
    http_app = server.streamable_http_app(
        streamable_http_path=PATH, stateless_http=True, json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    app.router.routes.extend(http_app.routes)
    return server.session_manager.run()
