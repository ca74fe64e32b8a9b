"""The MCP benchmark's core, tiny, against the live test server: both sides answer the same items (the core
checks it on every query) and the report has its figures."""

from __future__ import annotations

from benchmarks.mcp_bench import GOAL_P50_OVERHEAD_MS, run
from benchmarks.metrics_bench import middleware_cost_us
from benchmarks.search_bench import tenant_key
from tests.conftest import LiveServer


def test_mcp_bench_core_reports_both_sides(live_server: LiveServer) -> None:
    report = run(live_server.url, tenant_key(live_server.url, live_server.admin_key), size=30, queries=8, warmup=2)
    assert (report["size"], report["queries"], report["budget"]) == (30, 8, "low")
    for side in ("rest", "mcp"):
        assert 0 < report[side]["p50_ms"] <= report[side]["p95_ms"]
    assert report["p50_overhead_ms"] == round(report["mcp"]["p50_ms"] - report["rest"]["p50_ms"], 2)
    assert report["meets_goal"] == (report["p50_overhead_ms"] <= GOAL_P50_OVERHEAD_MS)


def test_metrics_cost_a_search_microseconds() -> None:
    assert 0 < middleware_cost_us(2000) < 500
