"""Budget-tier routing benchmark: Low-tier search latency and the cache-hit path (issue 10 goals).

Two measurements:

1. over HTTP against a real ``memcubed serve`` subprocess (local Postgres when it answers): a cube of
   ``--size`` generated memories, ingested and enriched (windowed BM25 is built by enrichment), then
   ``POST /v1/search`` with ``budget: "low"`` and ``use_cache: false`` (server ``took_ms``), then the same
   queries again with the cache on: the second ask of each is an exact hit, whose server time is reported;
2. in-process at ``--index-size`` (default 100,000): the only part of the Low tier whose cost grows with
   the cube, the windowed-BM25 (Tantivy) lookup, timed on an index of that many generated memories.

Ingesting and enriching 100k memories takes hours on the project's 2-core machine (SPLADE encoding in
enrichment, docs/benchmarks.md), so the 100k Low p50 is *estimated*: the HTTP p50 at ``--size`` plus the
growth of the BM25 lookup from ``--size`` to ``--index-size``. The row fetch is by primary key and does
not grow with the cube. The printout says which figure is measured and which is estimated.

    python benchmarks/routing_bench.py --size 2000 --index-size 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.search_bench import (  # noqa: E402 - after the path fix, as a script
    TextGenerator,
    _check,
    _client,
    bench_database,
    latency_stats,
    machine,
    seed,
    server_process,
    tenant_key,
)

GOALS = {"low_search_p50_ms_at_100k": 10.0, "cache_hit_server_ms": 2.0}


def wait_enriched(http: Any, cube_id: str, timeout_s: float) -> float:
    """Seconds until the cube's background enrichment is done (the Low tier searches its BM25 windows)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if not _check(http.get(f"/v1/cubes/{cube_id}"), "get cube").get("enrichment_pending"):
            return time.perf_counter() - t0
        time.sleep(1.0)
    raise TimeoutError(f"enrichment not done after {timeout_s:.0f} s")


def http_phase(size: int, queries: Sequence[str], enrich_timeout_s: float) -> dict[str, Any]:
    """``measure`` against a fresh ``memcubed serve`` subprocess."""
    with tempfile.TemporaryDirectory(prefix="routing-bench-") as tmp, bench_database() as db, \
            server_process(Path(tmp) / "data", db) as server:
        return measure(server.url, tenant_key(server.url, server.admin_key), size, queries, enrich_timeout_s)


def measure(url: str, key: str, size: int, queries: Sequence[str], enrich_timeout_s: float,
            progress: bool = True) -> dict[str, Any]:
    """Low-tier search and cache hits on a new ``size``-memory cube of the server at ``url``."""
    with _client(url, key) as http:
        cube_id = _check(http.post("/v1/cubes", json={"name": "routing-bench"}), "create cube")["id"]
        ingest = seed(http, cube_id, TextGenerator(seed=0), size, 500, progress=progress)
        enrich_s = wait_enriched(http, cube_id, enrich_timeout_s)

        def search(query: str, use_cache: bool) -> dict[str, Any]:
            return _check(http.post("/v1/search", json={"query": query, "cube_ids": [cube_id], "top_k": 10,
                                                        "budget": "low", "use_cache": use_cache}), "search")

        search("warm up", False)
        low = [search(q, False) for q in queries]
        for q in queries:  # fill the cache
            search(q, True)
        hits = [search(q, True) for q in queries]
    missed = sum(not h["routing"]["cache"]["hit"] for h in hits)
    if missed:
        raise RuntimeError(f"{missed} of {len(hits)} repeated queries missed the cache")
    return {
        "size": size,
        "ingest": ingest,
        "enrichment_seconds": round(enrich_s, 1),
        "low_tiers": sorted({r["routing"]["tiers"]["retrieval"] for r in low}),
        "low_search_server": latency_stats([float(r["took_ms"]) for r in low]),
        "low_retrieval_module": latency_stats([float(r["routing"]["cost"]["ms"].get("retrieval", 0.0)) for r in low]),
        "cache_hit_server": latency_stats([float(r["routing"]["cost"]["ms"]["total"]) for r in hits]),
        "cache_hit_kinds": sorted({str(h["routing"]["cache"]["kind"]) for h in hits}),
    }


def lexical_phase(sizes: Sequence[int], queries: Sequence[str]) -> dict[int, dict[str, float]]:
    """The Low tier's windowed-BM25 lookup (top 10) on Tantivy indexes of each size, in-process."""
    from app.vector.lexical import LexicalIndex

    gen = TextGenerator(seed=0)
    texts = [m["content"] for m in gen.memories(max(sizes))]
    out: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="routing-bench-bm25-") as tmp:
        for size in sizes:
            index = LexicalIndex(Path(tmp) / str(size))
            docs = [(i, texts[i], " ".join(texts[max(0, i - 1): i + 2]), " ".join(texts[max(0, i - 2): i + 3]))
                    for i in range(size)]
            t0 = time.perf_counter()
            for start in range(0, size, 10_000):
                index.upsert(docs[start: start + 10_000])
            built = time.perf_counter() - t0
            index.search("warm up", "window", 10)
            ms = []
            for q in queries:
                t1 = time.perf_counter()
                index.search(q, "window", 10)
                ms.append((time.perf_counter() - t1) * 1000)
            out[size] = {**latency_stats(ms), "build_seconds": round(built, 1)}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000, help="memories in the HTTP cube (ingested + enriched)")
    parser.add_argument("--index-size", type=int, default=100_000, help="memories in the in-process BM25 index")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--enrich-timeout", type=float, default=1800.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    queries = TextGenerator(seed=1).questions(args.queries)
    lexical = lexical_phase(sorted({args.size, args.index_size}), queries)
    served = http_phase(args.size, queries, args.enrich_timeout)
    small, big = lexical[args.size]["p50_ms"], lexical[args.index_size]["p50_ms"]
    estimate = served["low_search_server"]["p50_ms"] + max(0.0, big - small)
    report = {"machine": machine(), "http": served, "bm25_lookup": {str(k): v for k, v in lexical.items()},
              "low_search_p50_ms_estimated_at_index_size": round(estimate, 2), "goals": GOALS}
    hit_p50 = served["cache_hit_server"]["p50_ms"]
    print(json.dumps(report, indent=1))
    print(f"\nLow search p50 (server took_ms), measured at {args.size:,} memories: "
          f"{served['low_search_server']['p50_ms']:.2f} ms (p95 {served['low_search_server']['p95_ms']:.2f})")
    print(f"BM25 window lookup p50: {small:.2f} ms at {args.size:,}, {big:.2f} ms at {args.index_size:,} (in-process)")
    print(f"Low search p50 estimated at {args.index_size:,}: {estimate:.2f} ms "
          f"(goal ≤ {GOALS['low_search_p50_ms_at_100k']:g} ms: {'met' if estimate <= 10 else 'NOT met'})")
    print(f"Cache hit server time p50: {hit_p50:.2f} ms (p95 {served['cache_hit_server']['p95_ms']:.2f}; "
          f"goal ≤ {GOALS['cache_hit_server_ms']:g} ms: {'met' if hit_p50 <= 2 else 'NOT met'})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
