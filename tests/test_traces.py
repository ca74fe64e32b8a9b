"""Traces, read from OpenTelemetry's in-memory exporter on a live server in this process: a fine search is one
trace with a span per retrieval channel, a budget tier names itself, and every span of a request carries its
request id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.embedded import serve_in_thread
from app.observability import REQUEST_ID_ATTRIBUTE, new_tracer_provider
from tests.conftest import (
    Databases,
    LiveServer,
    TenantCtx,
    add_memories,
    make_cube,
    make_settings,
    new_tenant,
    wait_enriched,
)

FINE_CHANNELS = {"dense", "dense_window", "bm25_window", "bm25_window2", "splade", "splade_window",
                 "splade_window2", "time", "typed", "graph"}


@dataclass
class Traced:
    """A server whose spans land in ``exporter``, a tenant on it and a cube with two memories."""

    exporter: InMemorySpanExporter
    tenant: TenantCtx
    cube: str

    def request(self, request_id: str) -> list[ReadableSpan]:
        """The spans of one request, once its server span has ended (it ends after the response is sent)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            spans = [s for s in self.exporter.get_finished_spans()
                     if (s.attributes or {}).get(REQUEST_ID_ATTRIBUTE) == request_id]
            if any(s.kind == SpanKind.SERVER for s in spans):
                return spans
            time.sleep(0.05)
        raise AssertionError(f"no server span for request {request_id}")

    def trace(self, trace_id: int) -> list[ReadableSpan]:
        """Every span of a trace but the root: the test's own httpx call, traced too (and so propagated to
        the server) since the server instruments every httpx client of its process."""
        return [s for s in self.exporter.get_finished_spans() if s.context.trace_id == trace_id
                and s.parent is not None]


@pytest.fixture(scope="module")
def traced(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    settings = make_settings(databases, tmp_path_factory.mktemp("traced"))
    with serve_in_thread(settings, tracing=new_tracer_provider(SimpleSpanProcessor(exporter))) as url:
        server = LiveServer(url, settings.admin_key or "", settings)
        with server.client(settings.admin_key) as admin:
            tenant = new_tenant(server, admin)
        cube = make_cube(tenant)
        add_memories(tenant, cube, {"content": "Carol plays the viola in an orchestra", "memory_type": "episodic"},
                     {"content": "Carol's favourite composer is Brahms", "memory_type": "semantic"})
        wait_enriched(tenant, cube)
        yield Traced(exporter, tenant, cube)
        tenant.http.close()


def test_a_fine_search_is_one_trace_with_a_span_per_channel(traced: Traced) -> None:
    r = traced.tenant.http.post("/v1/search", json={"query": "what did Carol play last week?", "mode": "fine",
                                                    "cube_ids": [traced.cube]},
                                headers={"X-Request-ID": "fine-traced-1"})
    assert r.status_code == 200, r.text
    spans = traced.request("fine-traced-1")
    assert len({s.context.trace_id for s in spans}) == 1
    trace_id = spans[0].context.trace_id
    # Every span of the trace (server, channels, SQL) carries the request id: none was left out by the filter.
    assert {s.context.span_id for s in traced.trace(trace_id)} == {s.context.span_id for s in spans}
    [fine] = [s for s in spans if s.name == "retrieval.fine"]
    channels = [s for s in spans if s.parent is not None and s.parent.span_id == fine.context.span_id
                and s.name != "retrieval.splade_query"]
    assert {s.name for s in channels} == {f"retrieval.{c}" for c in FINE_CHANNELS}
    assert len(channels) == len(FINE_CHANNELS)  # one cube: each channel once
    assert all((s.attributes or {})["memcubed.retrieval.channel"] == s.name.removeprefix("retrieval.")
               for s in channels)
    hits = {s.name: (s.attributes or {}).get("memcubed.retrieval.hits") for s in channels}
    assert hits["retrieval.dense"] == 2 and hits["retrieval.splade"] == 2
    assert hits["retrieval.time"] == 0  # nothing was said last week: the channel ran and found nothing
    [server] = [s for s in spans if s.kind == SpanKind.SERVER]
    assert server.name == "POST /v1/search"
    assert any((s.attributes or {}).get("db.system") == "postgresql"
               or (s.attributes or {}).get("db.system.name") == "postgresql" for s in spans)


@pytest.mark.parametrize(("budget", "channels"), [
    ("low", ["bm25_window"]),
    ("high", sorted(FINE_CHANNELS - {"time"})),
])
def test_a_budget_tier_is_a_span_around_its_channels(traced: Traced, budget: str, channels: list[str]) -> None:
    request_id = f"routed-{budget}"
    r = traced.tenant.http.post("/v1/search", json={"query": f"which instrument, {budget}?", "budget": budget,
                                                    "cube_ids": [traced.cube]},
                                headers={"X-Request-ID": request_id})
    assert r.status_code == 200, r.text
    tier = r.json()["routing"]["tiers"]["retrieval"]
    assert tier == budget
    spans = traced.request(request_id)
    [span] = [s for s in spans if s.name == "retrieval.tier"]
    assert (span.attributes or {})["memcubed.retrieval.tier"] == tier
    below = {s.context.span_id for s in spans if s.name == "retrieval.fine"} | {span.context.span_id}
    found = sorted(s.name.removeprefix("retrieval.") for s in spans
                   if s.parent is not None and s.parent.span_id in below
                   and s.name not in ("retrieval.fine", "retrieval.splade_query"))
    assert found == channels


def linked_traces(span: ReadableSpan) -> set[int]:
    return {link.context.trace_id for link in span.links}


def test_enrichment_is_a_span_linked_to_the_write_with_a_span_per_batch(traced: Traced) -> None:
    cube = make_cube(traced.tenant)
    add_memories(traced.tenant, cube, "Dave keeps bees", "Dave sells honey at the market",
                 headers={"X-Request-ID": "write-traced-1"})
    wait_enriched(traced.tenant, cube)
    [server] = [s for s in traced.request("write-traced-1") if s.kind == SpanKind.SERVER]
    [enrichment] = [s for s in traced.exporter.get_finished_spans() if s.name == "enrichment"
                    and (s.attributes or {}).get("memcubed.cube_id") == cube]
    assert server.context.trace_id in linked_traces(enrichment)
    assert enrichment.context.trace_id != server.context.trace_id  # its own trace, not the request's
    assert (enrichment.attributes or {})["memcubed.enrichment.memories"] == 2
    batches = [s for s in traced.trace(enrichment.context.trace_id) if s.name == "enrichment.batch"]
    assert [(s.attributes or {})["memcubed.enrichment.memories"] for s in batches] == [2]
    assert all(REQUEST_ID_ATTRIBUTE not in (s.attributes or {}) for s in [enrichment, *batches])


def test_a_job_run_is_a_span_with_kind_id_and_outcome_linked_to_its_request(traced: Traced) -> None:
    r = traced.tenant.http.post(f"/v1/cubes/{traced.cube}/consolidate", json={},
                                headers={"X-Request-ID": "job-traced-1"})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 120
    while traced.tenant.http.get(f"/v1/jobs/{job_id}").json()["status"] != "done":
        assert time.monotonic() < deadline, "the consolidation job did not finish"
        time.sleep(0.1)
    [server] = [s for s in traced.request("job-traced-1") if s.kind == SpanKind.SERVER]
    deadline = time.monotonic() + 10
    while not (runs := [s for s in traced.exporter.get_finished_spans() if s.name == "job.run"
                        and (s.attributes or {}).get("memcubed.job.id") == job_id]):
        assert time.monotonic() < deadline, "no job.run span"
        time.sleep(0.05)
    [run] = runs
    assert {k: (run.attributes or {})[k] for k in ("memcubed.job.kind", "memcubed.job.outcome")} == {
        "memcubed.job.kind": "consolidate", "memcubed.job.outcome": "done"}
    assert linked_traces(run) == {server.context.trace_id}
    assert run.parent is None and run.status.is_ok
    # The job's SQL statements are children of its span.
    assert [s for s in traced.trace(run.context.trace_id) if s.name.startswith(("SELECT", "UPDATE"))]
