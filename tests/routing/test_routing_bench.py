"""The routing benchmark's core at a tiny size against the live test server (figures, not goals)."""

from __future__ import annotations

from benchmarks.routing_bench import lexical_phase, measure
from benchmarks.search_bench import TextGenerator, tenant_key
from tests.conftest import LiveServer


def test_low_search_and_cache_hits_are_measured(live_server: LiveServer) -> None:
    queries = TextGenerator(seed=1).questions(8)
    rep = measure(live_server.url, tenant_key(live_server.url, live_server.admin_key), 60, queries, 120.0,
                  progress=False)
    assert rep["size"] == 60 and rep["ingest"]["memories"] == 60
    assert rep["low_tiers"] == ["low"]  # budget "low" ran the low retrieval tier every time
    assert rep["cache_hit_kinds"] == ["exact"]  # the repeated queries were all exact hits
    for key in ("low_search_server", "low_retrieval_module", "cache_hit_server"):
        assert 0 < rep[key]["p50_ms"] <= rep[key]["p95_ms"]


def test_bm25_lookup_is_timed_per_size() -> None:
    out = lexical_phase([50, 200], TextGenerator(seed=1).questions(5))
    assert sorted(out) == [50, 200]
    assert all(0 < v["p50_ms"] <= v["p99_ms"] for v in out.values())
