"""The search and load benchmarks' cores, at a tiny size, against the live test server."""

from __future__ import annotations

import os

from benchmarks import load_bench, soak_bench
from benchmarks.render import VIEWS, table_markdown
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


def test_load_benchmark_core_reports_every_phase(live_server: LiveServer) -> None:
    rep = load_bench.run(live_server.url, live_server.admin_key, memories=20, duration=1, concurrency=(1, 2),
                         fast_concurrency=2, settle_timeout=3)  # bounded: other tests' enrichment may be queued

    assert rep["processes"] == rep["processes_answering"] == 1
    assert rep["ingest"]["memories"] == 20
    assert [set(s) for s in rep["settle"]] == [{"settled", "seconds"}] * 4  # seeded, warmed, each mixed level
    fast = rep["fast"]
    assert fast["clients"] == 2 and fast["connections_per_process"] == [2] and fast["error_count"] == 0
    assert set(fast["ops"]) == {"fast_search"} and fast["ops"]["fast_search"]["n"] > 0 and fast["qps"] > 0
    assert [m["clients"] for m in rep["mixed"]] == [1, 2]
    for m in rep["mixed"]:
        assert m["errors"] == {} and m["error_count"] == 0 and m["requests"] > 0 and m["qps"] > 0
        assert set(m["ops"]) == {"add", "fast_search", "fine_search", "messages", "context"}
        # Every client starts on a different operation: the second on fast search (the only one, if one add takes
        # the whole second on a loaded machine).
        assert m["clients"] == 1 or m["ops"]["fast_search"]["n"] > 0
        assert all(0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] for s in m["ops"].values() if s["n"])

    goals = load_bench.goals([rep])
    assert goals["fast_qps_ratio"] == {"value": None, "target": ">= 1.7", "met": None}  # one process count only
    assert goals["mixed_errors"]["clients"] == 2 and goals["mixed_errors"]["met"] is None  # not at 50 clients
    table = table_markdown(VIEWS["load_bench"]({"runs": [rep], "goals": goals})["load"])
    assert "| 1 | fast search only | 2 |" in table and "| 1 | mixed | 2 |" in table and "goals:" in table


def test_soak_benchmark_core_reads_back_every_acknowledged_write(live_server: LiveServer) -> None:
    rep = soak_bench.run(live_server.url, live_server.admin_key, clients=2, duration=2, memories=20, processes=1,
                         settle_timeout=30)
    v = rep["verify"]
    assert rep["soak"]["error_count"] == 0 and rep["goals"]["errors"]["met"]
    # Every memory an add or a message write answered with, each message call's assistant turn included.
    ops = rep["soak"]["ops"]
    assert v["acknowledged"] == ops["add"]["n"] + 3 * ops["messages"]["n"] > 0
    assert v["readable"] == v["acknowledged"] and v["unreadable"] == []
    assert v["not_searched_repeated_text"] == (ops["messages"]["n"] if ops["messages"]["n"] > 1 else 0)
    assert v["not_found"] == 0 and v["processes_searched"] == 1 and rep["goals"]["lost"] == {
        "value": 0, "target": "0", "met": True}
    assert VIEWS["soak_bench"]({**rep, "command": "x"})["soak"]["rows"][0][11] == 0
