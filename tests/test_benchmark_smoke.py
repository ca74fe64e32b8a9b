"""The search benchmark's core, at a tiny size, against the live test server."""

from __future__ import annotations

import os

from benchmarks.search_bench import TextGenerator, machine, markdown, run, tenant_key
from tests.conftest import LiveServer


def test_generated_text_is_deterministic_and_varied() -> None:
    a, b = TextGenerator(7).memories(50), TextGenerator(7).memories(50)
    assert a == b
    assert len({m["content"] for m in a}) == 50
    assert all(10 <= len(m["content"].split()) <= 30 for m in a)
    assert all(q.endswith("?") for q in TextGenerator(7).questions(20))


def test_benchmark_core_reports_sane_figures(live_server: LiveServer) -> None:
    key = tenant_key(live_server.url, live_server.admin_key)
    rep = run(live_server.url, key, 200, batch=100, queries=20, concurrency=(1, 2), single=5, warmup=2,
              rss_pid=os.getpid())

    assert {"size", "mode", "top_k", "cube_id", "ingest", "single_add", "search", "rss_mb",
            "rss_peak_mb"} <= set(rep)
    assert rep["size"] == 200 and rep["mode"] == "fast"
    assert rep["ingest"]["memories"] == 200 and rep["ingest"]["memories_per_s"] > 0
    assert rep["single_add"]["n"] == 5 and 0 < rep["single_add"]["p50_ms"] <= rep["single_add"]["p95_ms"]
    assert set(rep["search"]) == {1, 2}
    for c, s in rep["search"].items():
        assert s["concurrency"] == c and s["queries"] == 20
        assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"]
        assert s["qps"] > 0 and 0 < s["took_ms_p50"] <= s["p50_ms"] * 1.5
        assert s["hits_mean"] == 10  # 205 memories in the cube, top_k 10
    assert rep["rss_mb"] is not None and 50 < rep["rss_mb"] <= rep["rss_peak_mb"]

    md = markdown([rep], "python benchmarks/search_bench.py --sizes 200", machine(), "live test server")
    assert "### 200 memories" in md and "| 1 | 20 |" in md and "batched ingest" in md
