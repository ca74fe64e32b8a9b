"""Observability, live: Prometheus metrics at /metrics (request histogram by route template, searches by mode
and tier, gauges read from Postgres at scrape time, bounded tenant labels), OpenTelemetry traces exported
over OTLP/HTTP to a real receiver (one trace for a fine search, the request id on every span), and JSON
logs that carry request id, route and tenant but never content or keys."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.embedded import serve_in_thread
from app.observability import JsonFormatter, configure_logging
from tests.conftest import (
    Databases,
    LiveServer,
    TenantCtx,
    add_memories,
    make_cube,
    make_settings,
    new_tenant,
    sql,
    wait_enriched,
)


def scrape(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    r = http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def sample(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_request_latency_and_searches_are_counted_by_route_template(tenant: TenantCtx, cube: str) -> None:
    add_memories(tenant, cube, "Alice is allergic to peanuts")
    before = scrape(tenant.http)
    for _ in range(3):
        assert tenant.http.post("/v1/search", json={"query": "allergy", "cube_ids": [cube]}).status_code == 200
    for _ in range(2):  # the second is served from the routed-result cache
        assert tenant.http.post("/v1/search", json={"query": "allergy", "cube_ids": [cube],
                                                    "budget": "low"}).status_code == 200
    missing = str(uuid.uuid4())
    assert tenant.http.get(f"/v1/memories/{missing}").status_code == 404
    assert tenant.http.get("/no/such/route").status_code == 404
    after = scrape(tenant.http)
    raw = tenant.http.get("/metrics").text

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    latency = "memcubed_http_request_duration_seconds_count"
    assert delta(latency, method="POST", route="/v1/search", status="200") == 5
    assert delta(latency, method="GET", route="/v1/memories/{memory_id}", status="404") == 1
    assert delta(latency, method="GET", route="unmatched", status="404") == 1
    assert delta("memcubed_searches_total", endpoint="search", mode="fast", tier="none") == 3
    assert delta("memcubed_searches_total", endpoint="search", mode="routed", tier="low") == 2
    cache = "memcubed_routing_cache_lookups_total"
    assert (delta(cache, endpoint="search", result="miss"), delta(cache, endpoint="search", result="exact")) == (1, 1)
    assert missing not in raw and tenant.id not in raw and tenant.key not in raw
    assert "allergy" not in raw and "peanuts" not in raw


def test_enrichment_backlog_jobs_and_index_sizes_are_read_at_scrape_time(
        live_server: LiveServer, tenant: TenantCtx) -> None:
    cube = make_cube(tenant)
    ids = [m["id"] for m in add_memories(tenant, cube, "Bob plays the cello", "Bob lives in Oslo")]
    tenant.http.get(f"/v1/cubes/{cube}")
    # Make them look unenriched and a year old: nothing queues them again until the cube's next write.
    sql(live_server.settings.database_url or "", "UPDATE memories SET enriched_at = NULL, "
        "created_at = now() - interval '365 days' WHERE id = ANY(%s::uuid[])", (ids,))
    assert tenant.http.get(f"/v1/cubes/{cube}").json()["enrichment_pending"] == 2
    samples = scrape(tenant.http)
    assert sample(samples, "memcubed_enrichment_pending") >= 2
    assert 365 * 86400 <= sample(samples, "memcubed_enrichment_lag_seconds") < 365 * 86400 + 600
    jobs = sql(live_server.settings.database_url or "",
               "SELECT kind, status, count(*) FROM jobs GROUP BY kind, status")
    assert {(k, s): float(n) for k, s, n in jobs} == {
        (dict(labels)["kind"], dict(labels)["state"]): value
        for (name, labels), value in samples.items() if name == "memcubed_jobs"}
    activations = sql(live_server.settings.database_url or "", "SELECT tier, sum(bytes), count(*) FROM activations "
                      "WHERE status = 'active' GROUP BY tier")
    assert {tier: (float(nbytes), float(n)) for tier, nbytes, n in activations} == {
        dict(labels)["tier"]: (value, samples[("memcubed_activation_entries", labels)])
        for (name, labels), value in samples.items() if name == "memcubed_activation_bytes"}
    assert sample(samples, "memcubed_index_vectors", kind="dense") >= 2
    assert sample(samples, "memcubed_index_cubes", kind="dense") >= 1
    sql(live_server.settings.database_url or "", "UPDATE memories SET enriched_at = now(), created_at = now() "
        "WHERE id = ANY(%s::uuid[])", (ids,))
    assert sample(scrape(tenant.http), "memcubed_enrichment_lag_seconds") < 365 * 86400


def test_fine_index_sizes_by_kind_are_read_at_scrape_time(tenant: TenantCtx, cube: str) -> None:
    before = scrape(tenant.http)
    add_memories(tenant, cube, "Erin grows tomatoes", "Erin bakes bread", "Erin swims at dawn")
    wait_enriched(tenant, cube)
    after = scrape(tenant.http)

    def delta(name: str, kind: str) -> float:
        return sample(after, name, kind=kind) - sample(before, name, kind=kind)

    assert {kind: delta("memcubed_index_documents", kind)
            for kind in ("bm25", "splade", "splade_window", "splade_window2")} == {
        "bm25": 3, "splade": 3, "splade_window": 3, "splade_window2": 3}
    assert (delta("memcubed_index_vectors", "dense"), delta("memcubed_index_vectors", "dense_window")) == (3, 3)
    assert (delta("memcubed_index_cubes", "dense"), delta("memcubed_index_cubes", "fine")) == (1, 1)
    assert tenant.id not in tenant.http.get("/metrics").text and cube not in tenant.http.get("/metrics").text


# -- a server with tracing, JSON logs and tenant labels -------------------------------------------------------


@dataclass
class OtlpReceiver:
    """A real OTLP/HTTP endpoint: keeps every ExportTraceServiceRequest posted to /v1/traces."""

    url: str
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)

    def spans(self) -> list[tuple[str, str, dict[str, str]]]:
        """(trace id, span name, string attributes) of every span received."""
        return [(span.trace_id.hex(), span.name, {a.key: a.value.string_value for a in span.attributes})
                for request in self.requests for rs in request.resource_spans for ss in rs.scope_spans
                for span in ss.spans]


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    received: list[ExportTraceServiceRequest] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            assert self.path == "/v1/traces"
            received.append(ExportTraceServiceRequest.FromString(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield OtlpReceiver(f"http://127.0.0.1:{server.server_port}", received)
    server.shutdown()


@dataclass
class ObservedRun:
    """What one run of the observed server produced: spans, JSON log lines, metrics, and its tenants."""

    receiver: OtlpReceiver
    logs: list[dict[str, object]]
    metrics: str
    tenants: list[TenantCtx]
    query: str


@pytest.fixture(scope="module")
def observed(otlp: OtlpReceiver, databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> ObservedRun:
    """A server with tracing, JSON logs and one tenant label: a fine search, then shut down (which exports
    the spans still buffered)."""
    settings = make_settings(databases, tmp_path_factory.mktemp("observed"), otel_endpoint=otlp.url,
                             log_format="json", metrics_tenants=1)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("memcubed.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    query = "what instrument does Carol play?"
    try:
        with serve_in_thread(settings) as url:
            server = LiveServer(url, settings.admin_key or "", settings)
            with server.client(settings.admin_key) as admin:
                tenants = [new_tenant(server, admin), new_tenant(server, admin)]
            first = tenants[0]
            cube = make_cube(first)
            add_memories(first, cube, "Carol plays the viola in an orchestra")
            wait_enriched(first, cube)
            r = first.http.post("/v1/search", json={"query": query, "cube_ids": [cube], "mode": "fine"},
                                headers={"X-Request-ID": "fine-search-1"})
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["memory"]["content"] == "Carol plays the viola in an orchestra"
            tenants[1].http.get("/v1/cubes")
            metrics = first.http.get("/metrics").text
            for t in tenants:
                t.http.close()
    finally:
        access.removeHandler(handler)
    logs = [json.loads(line) for line in stream.getvalue().splitlines()]
    return ObservedRun(otlp, logs, metrics, tenants, query)


def test_a_fine_search_is_one_trace_with_the_request_id_on_every_span(observed: ObservedRun) -> None:
    spans = [s for s in observed.receiver.spans() if s[2].get("memcubed.request_id") == "fine-search-1"]
    assert len({trace_id for trace_id, _, _ in spans}) == 1
    names = [name for _, name, _ in spans]
    assert "POST /v1/search" in names
    sql_spans = [attrs for _, _, attrs in spans if attrs.get("db.system") == "postgresql"
                 or attrs.get("db.system.name") == "postgresql"]
    assert len(sql_spans) >= 2
    everything = json.dumps(observed.receiver.spans())
    assert observed.query not in everything and "viola" not in everything
    assert all(t.key not in everything for t in observed.tenants)


def test_json_logs_carry_request_id_route_and_tenant_never_content_or_keys(observed: ObservedRun) -> None:
    line = next(entry for entry in observed.logs if entry.get("request_id") == "fine-search-1")
    assert {k: line[k] for k in ("logger", "message", "method", "route", "status", "tenant_id")} == {
        "logger": "memcubed.access", "message": "request", "method": "POST", "route": "/v1/search",
        "status": 200, "tenant_id": observed.tenants[0].id}
    assert isinstance(line["duration_ms"], float)
    text = json.dumps(observed.logs)
    assert observed.query not in text and "viola" not in text
    assert all(t.key not in text for t in observed.tenants)


def test_tenant_labels_stop_at_the_configured_number(observed: ObservedRun) -> None:
    families = {f.name: f for f in text_string_to_metric_families(observed.metrics)}
    counts = {s.labels["tenant"]: s.value for s in families["memcubed_tenant_requests"].samples
              if s.name == "memcubed_tenant_requests_total"}
    first, second = observed.tenants
    assert set(counts) == {first.id, "other"}
    assert second.id not in observed.metrics


def test_metrics_can_be_turned_off(databases: Databases, tmp_path: Path) -> None:
    settings = make_settings(databases, tmp_path, metrics_enabled=False)
    with serve_in_thread(settings) as url, httpx.Client(base_url=url) as http:
        assert http.get("/metrics").status_code == 404


def test_json_log_format_is_installed_and_keeps_exception_messages_out() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(Settings(log_format="json", log_level="warning"))
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter) and root.level == logging.WARNING
        content = "the user's secret diagnosis"
        try:
            raise ValueError(content)  # the frames show this line's code, never the value
        except ValueError:
            record = logging.LogRecord("memcubed.test", logging.ERROR, __file__, 1, "enrichment failed", None,
                                       sys.exc_info())
        line = json.loads(handler.formatter.format(record))
        assert (line["level"], line["message"], line["exc_type"]) == ("error", "enrichment failed", "ValueError")
        assert "secret diagnosis" not in json.dumps(line) and "test_observability.py" in line["stack"]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
