"""Prometheus metrics at ``GET /metrics``, and the middleware that observes every request.

Request latency is a histogram by method, route template and status (never the raw path, so ids do not
multiply series); searches count by endpoint, mode and retrieval tier; refusals (429, 413, quotas) by kind. The
enrichment backlog, jobs by kind and state and the dense index sizes are collected when Prometheus scrapes,
from Postgres and the loaded indexes, so they are right whichever process did the work. Tenant ids appear only when
``MEMCUBED_METRICS_TENANTS`` allows, for that many tenants at most; keys and content never. The fine index
sizes and the activation store's hits, misses and tier moves are this process's state, read at scrape time
too (summed over tenants).

Several processes: scrape each one (every ``memcubed serve`` is its own target), or run them with
``PROMETHEUS_MULTIPROC_DIR`` set, and any process's ``/metrics`` adds up the request metrics of all.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.container import Container
from app.observability import CURRENT, REQUEST_ID_ATTRIBUTE
from app.repositories import metrics as queries
from app.schemas.routing import Routing

log = logging.getLogger("memcubed.access")

REQUESTS = Histogram(
    "memcubed_http_request_duration_seconds", "HTTP request latency by route template and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SEARCHES = Counter("memcubed_searches_total", "Searches and context requests by mode and retrieval tier.",
                   ["endpoint", "mode", "tier"])
CACHE_LOOKUPS = Counter("memcubed_routing_cache_lookups_total",
                        "Routed searches and context requests by cache result: exact, semantic or miss.",
                        ["endpoint", "result"])
TENANT_REQUESTS = Counter("memcubed_tenant_requests_total",
                          "Requests by tenant, for the first MEMCUBED_METRICS_TENANTS tenants ('other' after).",
                          ["tenant"])

REFUSALS = Counter("memcubed_refusals_total", "Requests refused for their rate, their size or a tenant's quota "
                   "(429, 413 and 403 quota_exceeded).", ["kind"])
REFUSED = {429: "rate_limit", 413: "payload_too_large"}
QUOTA_REFUSALS = Counter("memcubed_quota_refusals_total", "Writes refused by a tenant quota, by quota.", ["quota"])
for _kind in (*REFUSED.values(), "quota_exceeded"):
    REFUSALS.labels(_kind)  # every series exists from the start, so a rate over them is 0, not empty


def count_quota_refusal(quota: str) -> None:
    """A 403 ``quota_exceeded`` (its status alone does not tell it from a permission refusal)."""
    REFUSALS.labels("quota_exceeded").inc()
    QUOTA_REFUSALS.labels(quota).inc()


def count_search(endpoint: str, mode: str, routing: Routing | None) -> None:
    """One search (``mode`` fast / fine, or ``routed`` when a budget chose the tiers)."""
    tier = routing.tiers.get("retrieval", "none") if routing is not None else "none"
    SEARCHES.labels(endpoint, mode, tier).inc()
    if routing is not None:
        CACHE_LOOKUPS.labels(endpoint, routing.cache.kind if routing.cache.hit and routing.cache.kind else "miss").inc()


class TenantLabels:
    """Tenant ids as label values for the first ``limit`` tenants seen; every later one is ``other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def label(self, tenant_id: str) -> str:
        with self.lock:
            if tenant_id in self.seen or len(self.seen) < self.limit:
                self.seen.add(tenant_id)
                return tenant_id
        return "other"


class ObserveRequests:
    """Times every request into the histogram, names its route and tenant on the request context, puts the
    request id on the server span, and writes the access line in JSON log mode (the text mode leaves that
    to uvicorn). Inside ``RequestLimits``, which sets the request context."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.metrics = settings.metrics_enabled
        self.json_log = settings.log_format == "json"
        self.tenants = TenantLabels(settings.metrics_tenants) if settings.metrics_tenants else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = CURRENT.get()
        if ctx is not None:
            trace.get_current_span().set_attribute(REQUEST_ID_ATTRIBUTE, ctx.request_id)
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if self.metrics:
                REQUESTS.labels(scope["method"], template, str(status)).observe(elapsed)
                if status in REFUSED:
                    REFUSALS.labels(REFUSED[status]).inc()
            if ctx is not None:
                ctx.route = template
                if self.tenants is not None and ctx.tenant_id is not None:
                    TENANT_REQUESTS.labels(self.tenants.label(ctx.tenant_id)).inc()
            if self.json_log:
                log.info("request", extra={"method": scope["method"], "status": status,
                                           "duration_ms": round(elapsed * 1000, 3)})


class DatabaseCollector(Collector):
    """Read at scrape time: the enrichment backlog, jobs and activation tier usage from Postgres; index sizes
    and activation lookups from this process's indexes and KV store."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def collect(self) -> Iterable[Metric]:
        with self.container.sessions() as s:
            pending, oldest = queries.enrichment_backlog(s)
            jobs = queries.jobs_by_state(s)
            activations = queries.activation_usage(s)
        yield GaugeMetricFamily("memcubed_enrichment_pending", "Active memories waiting for enrichment.",
                                value=pending)
        lag = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily("memcubed_enrichment_lag_seconds",
                                "Age of the oldest memory waiting for enrichment (0 when none waits).", value=lag)
        by_state = GaugeMetricFamily("memcubed_jobs", "Jobs by kind and state.", labels=["kind", "state"])
        for kind, state, count in jobs:
            by_state.add_metric([kind, state], count)
        yield by_state
        tier_bytes = GaugeMetricFamily("memcubed_activation_bytes", "Bytes of live activations by tier.",
                                       labels=["tier"])
        tier_entries = GaugeMetricFamily("memcubed_activation_entries", "Live activations by tier.", labels=["tier"])
        for tier, nbytes, entries in activations:
            tier_bytes.add_metric([tier], nbytes)
            tier_entries.add_metric([tier], entries)
        yield tier_bytes
        yield tier_entries
        yield from self._indexes()
        yield from self._activation_counters()

    def _indexes(self) -> Iterable[Metric]:
        """Sizes of the dense and fine indexes this process holds, by kind (never by cube)."""
        vectors = self.container.vectors
        loaded = [index for cube_id in vectors.cube_ids() if (index := vectors.peek(cube_id)) is not None]
        fine = [cube.sizes() for cube in self.container.fine.loaded()]
        documents: collections.Counter[str] = collections.Counter()
        for sizes in fine:
            documents.update(sizes)
        yield _by_kind("memcubed_index_cubes", "Cube indexes loaded in this process.",
                       {"dense": len(loaded), "fine": len(fine)})
        yield _by_kind("memcubed_index_vectors", "Vectors in the loaded dense indexes (plain and windowed).",
                       {"dense": sum(int(index.index.ntotal) for index in loaded),
                        "dense_window": documents.pop("dense_window", 0)})
        yield _by_kind("memcubed_index_documents", "Documents in the loaded BM25 and SPLADE indexes.",
                       {kind: documents[kind] for kind in ("bm25", "splade", "splade_window", "splade_window2")})

    def _activation_counters(self) -> Iterable[Metric]:
        """The activation store's prefix lookups and tier moves since this process loaded its model."""
        counters = self.container.activation.counters()
        lookups = CounterMetricFamily("memcubed_activation_lookups",
                                      "Activation (KV cache) lookups by result: hit or miss.", labels=["result"])
        lookups.add_metric(["hit"], counters.hits)
        lookups.add_metric(["miss"], counters.misses)
        yield lookups
        moves = CounterMetricFamily("memcubed_activation_moves", "Activations moved between tiers or evicted.",
                                    labels=["move"])
        for move, n in (("promotion", counters.promotions), ("demotion", counters.demotions),
                        ("eviction", counters.evictions)):
            moves.add_metric([move], n)
        yield moves


def _by_kind(name: str, documentation: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["kind"])
    for kind, value in values.items():
        family.add_metric([kind], value)
    return family


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format: this process's (or, with PROMETHEUS_MULTIPROC_DIR, every process's) request
    metrics, then the gauges read from Postgres now."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shared = CollectorRegistry()
        MultiProcessCollector(shared)
    else:
        shared = REGISTRY
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(DatabaseCollector(request.app.state.container))
    return Response(generate_latest(shared) + generate_latest(scraped), media_type=CONTENT_TYPE_LATEST)
