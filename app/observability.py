"""Request context for logs and traces, JSON logs, and OpenTelemetry tracing.

Every request gets a :class:`RequestContext` (request id at once; route and tenant once known), which JSON log
lines and spans carry. Nothing here reads request or response bodies: logs and spans hold ids, routes,
statuses and timings, never memory content or keys.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy import Engine
from starlette.types import ASGIApp, Scope

from app import __version__
from app.config import Settings

REQUEST_ID_ATTRIBUTE = "memcubed.request_id"


@dataclass
class RequestContext:
    """What logs and spans may say about the request being served."""

    request_id: str
    route: str | None = None
    tenant_id: str | None = None
    seq: int | None = None  # the last change this request's writes logged (X-Memcubed-Seq)


CURRENT: ContextVar[RequestContext | None] = ContextVar("memcubed_request", default=None)


def bind(scope: Scope, tenant_id: object | None) -> None:
    """Name the request's route template and tenant, once authentication knows them."""
    ctx = CURRENT.get()
    if ctx is not None:
        ctx.route = getattr(scope.get("route"), "path", None)
        ctx.tenant_id = str(tenant_id) if tenant_id is not None else None


# -- logs -----------------------------------------------------------------------------------------------------

# LogRecord attributes that are not ``extra`` fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the request's id / route / tenant, and any
    ``extra`` fields. An exception is logged as its type and frames, without its message (which can quote
    data)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ctx = CURRENT.get()
        if ctx is not None:
            line.update(request_id=ctx.request_id, route=ctx.route, tenant_id=ctx.tenant_id)
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
            line["stack"] = "".join(traceback.format_tb(record.exc_info[2]))
        return json.dumps(line, default=str)


def configure_logging(settings: Settings) -> None:
    """The root handler: plain text, or JSON lines when ``log_format`` is ``json``."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)


# -- traces ---------------------------------------------------------------------------------------------------


class RequestIdSpans(SpanProcessor):
    """Puts the request id on every span started while a request is served (database and HTTP client spans
    included); the server span, started before the id exists, gets it from the request middleware."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        ctx = CURRENT.get()
        if ctx is not None:
            span.set_attribute(REQUEST_ID_ATTRIBUTE, ctx.request_id)

    def on_end(self, span: ReadableSpan) -> None:
        return None


def new_tracer_provider(processor: SpanProcessor) -> TracerProvider:
    """A provider that puts the request id on every span and hands finished spans to ``processor`` (the OTLP
    exporter below; an in-memory exporter in tests)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "memcubed",
                                                        "service.version": __version__}))
    provider.add_span_processor(RequestIdSpans())
    provider.add_span_processor(processor)
    return provider


def tracer_provider(settings: Settings) -> TracerProvider | None:
    """A provider exporting over OTLP/HTTP to ``otel_endpoint``; ``None`` (no tracing) when it is unset."""
    if not settings.otel_endpoint:
        return None
    endpoint = settings.otel_endpoint.rstrip("/") + "/v1/traces"
    return new_tracer_provider(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))


def trace_app(app: ASGIApp, provider: TracerProvider) -> None:
    """Server spans for every request, by route template (``/metrics`` and health checks left out)."""
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider,  # type: ignore[arg-type]
                                       excluded_urls="/metrics,/healthz,/readyz")


@contextmanager
def traced_clients(provider: TracerProvider | None, engine: Engine) -> Iterator[None]:
    """While the app runs: spans for every SQL statement on ``engine`` and every httpx request of the
    process; at the end, the spans still buffered are exported. Nothing without a provider."""
    if provider is None:
        yield
        return
    # The instrumentation declares sqlalchemy < 2.1 but works on 2.1 (the trace test shows its spans).
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider, skip_dep_check=True)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    try:
        yield
    finally:
        HTTPXClientInstrumentor().uninstrument()
        SQLAlchemyInstrumentor().uninstrument()
        provider.shutdown()
