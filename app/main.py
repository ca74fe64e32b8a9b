"""The FastAPI application factory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import __version__, observability
from app.api import errors, mcp, metrics
from app.api.deps import CallerBeforeBody
from app.api.errors import envelope
from app.api.routes import (
    activation,
    adapters,
    admin,
    console,
    cubes,
    forget_requests,
    graph,
    health,
    jobs,
    lifecycle,
    memories,
    routing,
)
from app.config import Settings
from app.container import Container, build
from app.redact import install_log_redaction
from app.schemas.common import ErrorEnvelope


class RequestLimits:
    """Adds ``X-Request-ID`` to every response (and ``X-Memcubed-Seq`` to writes) and refuses bodies over the
    configured size with a 413.

    Written as plain ASGI so that a chunked body is counted as it streams, not after it is buffered.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode(errors="replace")[:100] or uuid.uuid4().hex
        context = observability.RequestContext(request_id)
        observability.CURRENT.set(context)
        imports = scope["path"].endswith(("/import", "/import-archive"))
        limit = self.settings.max_import_bytes if imports else self.settings.max_body_bytes
        if scope["path"].endswith("/adapters") and scope["method"] == "POST":
            # An adapter upload: the weights (whose own limit the service checks) plus room for the config.
            limit = max(limit, self.settings.adapter_max_bytes + 1024 * 1024)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode()))
                if context.seq is not None:  # a write: the change number a read elsewhere may ask to see
                    message["headers"].append((b"x-memcubed-seq", str(context.seq).encode()))
            await send(message)

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send_with_id, limit)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # An HTTPException passes through FastAPI's body parsing to the error handlers.
                    raise HTTPException(413, f"request body is over {limit} bytes")
            return message

        await self.app(scope, counting_receive, send_with_id)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        # Refused before the inner middleware that counts the app's own 413s sees the request.
        metrics.REFUSALS.labels("payload_too_large").inc()
        response = envelope(413, "payload_too_large", f"request body is over {limit} bytes", {"limit": limit})
        await response(scope, receive, send)


def create_app(settings: Settings | None = None, container: Container | None = None,
               tracing: TracerProvider | None = None) -> FastAPI:
    """Build the app. The container (database, model, index) is built at start unless one is given.

    Traces go to the container's provider, else to ``tracing`` (tests give one with an in-memory exporter),
    else to the OTLP endpoint of the settings, if any.
    """
    settings = settings or (container.settings if container else Settings())
    provider = container.tracing if container else tracing or observability.tracer_provider(settings)
    install_log_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = container is None
        app.state.container = container or build(settings, provider)
        try:
            with observability.traced_clients(provider, app.state.container.engine):
                async with mcp_running:
                    yield
        finally:
            if owned:
                app.state.container.close()

    app = FastAPI(
        title="memcubed",
        version=__version__,
        description="Long-term memory for LLM agents: MemCubes of plaintext, activation and parametric memory.",
        lifespan=lifespan,
    )
    errors.install(app)
    # Document the error envelope every route answers with, in place of FastAPI's default 422 shape.
    error_responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorEnvelope, "description": description}
        for status, description in ((401, "Missing or bad API key"), (403, "Wrong key scope"), (404, "Not found"),
                                    (409, "Conflict"), (413, "Over a size limit"), (422, "Invalid input"),
                                    (429, "Over the key's or the tenant's request rate"),
                                    (400, "A body that cannot be read (not UTF-8 JSON)"))
    }
    error_responses[429]["headers"] = {"Retry-After": {
        "description": "Whole seconds to wait before the next request is counted", "schema": {"type": "integer"}}}
    for module in (health, admin, cubes, memories, graph, activation, adapters, jobs, routing, forget_requests,
                   lifecycle, console):
        app.include_router(module.router, responses=None if module is health else error_responses)
    if settings.metrics_enabled:
        app.include_router(metrics.router)
    mcp_running = mcp.mount(app)
    app.add_middleware(CallerBeforeBody)  # inside the observer, so its 401s and 429s are counted
    if settings.metrics_enabled or settings.log_format == "json" or provider is not None:
        app.add_middleware(metrics.ObserveRequests, settings=settings)
    app.add_middleware(console.SameOriginWrites)
    app.add_middleware(RequestLimits, settings=settings)
    if provider is not None:
        observability.trace_app(app, provider)
    return app
