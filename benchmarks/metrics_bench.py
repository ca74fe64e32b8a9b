"""What Prometheus metrics cost a fast search: two ``memcubed serve`` subprocesses over the same database and
the same cube, one with metrics (``MEMCUBED_METRICS_ENABLED=true``, the default) and one without, queried
alternately with the same questions in one run, so both see the same machine load (issue 20's goal: at most
3 % more fast-search latency at p50).

    python benchmarks/metrics_bench.py                  # writes benchmarks/results/metrics_bench.json

``run(url_without, url_with, tenant_key, cube_id, ...)`` is the importable core.
"""

from __future__ import annotations

import argparse
import asyncio
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

from starlette.routing import Route  # noqa: E402 - after the path fix, as a script

from app.api.metrics import ObserveRequests, count_search  # noqa: E402
from app.config import Settings  # noqa: E402
from benchmarks.search_bench import (  # noqa: E402
    TextGenerator,
    _check,
    _client,
    bench_database,
    latency_stats,
    machine,
    provenance,
    server_process,
    tenant_key,
)

GOAL_OVERHEAD_PCT = 3.0
RESULTS = Path(__file__).resolve().parent / "results"


def middleware_cost_us(n: int = 20_000) -> float:
    """Microseconds the metrics add to one search, timed in-process where network and machine load cannot
    hide them: the request middleware (histogram observe included) around a no-op app, plus the search
    counter, minus the bare no-op app."""
    async def noop(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = route
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def sink(message: Any) -> None:
        return None

    async def receive() -> Any:
        return {"type": "http.request"}

    route = Route("/v1/search", noop)
    observed = ObserveRequests(noop, Settings(metrics_enabled=True))

    async def timed(app: Any, count: bool) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            await app({"type": "http", "method": "POST", "path": "/v1/search"}, receive, sink)
            if count:
                count_search("search", "fast", None)
        return (time.perf_counter() - t0) / n * 1e6

    bare = asyncio.run(timed(noop, False))
    return round(asyncio.run(timed(observed, True)) - bare, 2)


def run(url_without: str, url_with: str, api_key: str, cube_id: str, questions: Sequence[str], *,
        warmup: int = 20, top_k: int = 10) -> dict[str, Any]:
    """Fast searches, alternating between the two servers (and which goes first); client-side latency."""
    timings: dict[str, list[float]] = {"without": [], "with": []}
    urls = {"without": url_without, "with": url_with}
    clients = {side: _client(url, api_key) for side, url in urls.items()}
    try:
        for i, query in enumerate(questions):
            for side in (("without", "with") if i % 2 == 0 else ("with", "without")):
                t0 = time.perf_counter()
                body = _check(clients[side].post("/v1/search", json={"query": query, "cube_ids": [cube_id],
                                                                      "top_k": top_k}), "search")
                elapsed = (time.perf_counter() - t0) * 1000
                if len(body["results"]) != top_k:
                    raise RuntimeError(f"{side}: {len(body['results'])} results for {query!r}")
                if i >= warmup:
                    timings[side].append(elapsed)
        scraped = clients["with"].get("/metrics")
        if scraped.status_code != 200 or clients["without"].get("/metrics").status_code != 404:
            raise RuntimeError("the two servers do not differ in metrics as configured")
    finally:
        for client in clients.values():
            client.close()
    without, with_ = latency_stats(timings["without"]), latency_stats(timings["with"])
    overhead = round(100 * (with_["p50_ms"] - without["p50_ms"]) / without["p50_ms"], 2)
    cost_us = middleware_cost_us()
    return {"queries": len(timings["with"]), "without_metrics": without, "with_metrics": with_,
            "p50_overhead_pct": overhead, "mean_overhead_pct":
                round(100 * (with_["mean_ms"] - without["mean_ms"]) / without["mean_ms"], 2),
            "in_process_cost_us": cost_us,
            "in_process_cost_pct_of_p50": round(100 * cost_us / 1000 / without["p50_ms"], 3),
            "goal_overhead_pct": GOAL_OVERHEAD_PCT, "meets_goal": overhead <= GOAL_OVERHEAD_PCT}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="memories in the cube")
    parser.add_argument("--queries", type=int, default=400, help="searches timed on each server")
    parser.add_argument("--out", type=Path, default=RESULTS / "metrics_bench.json")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    gen = TextGenerator(0)
    with bench_database() as database_url, tempfile.TemporaryDirectory(prefix="memcubed-metrics-bench-") as tmp:
        if database_url is None:
            raise SystemExit("metrics_bench needs the local Postgres (--pg-admin-url of search_bench): both "
                             "servers must share one database")
        off = {"MEMCUBED_METRICS_ENABLED": "false"}
        with server_process(Path(tmp) / "with", database_url) as with_server:
            key = tenant_key(with_server.url, with_server.admin_key)
            with _client(with_server.url, key) as http:
                cube_id = _check(http.post("/v1/cubes", json={"name": "metrics-bench"}), "cube")["id"]
                for start in range(0, args.size, 500):
                    _check(http.post(f"/v1/cubes/{cube_id}/memories",
                                     json={"memories": gen.memories(min(500, args.size - start))}), "seed")
                # Enrichment would otherwise run on both servers while they are timed.
                while _check(http.get(f"/v1/cubes/{cube_id}"), "cube")["enrichment_pending"]:
                    time.sleep(1)
            # Started after seeding: it builds the cube's dense index from the same Postgres rows.
            with server_process(Path(tmp) / "without", database_url, extra_env=off) as without_server:
                report = run(without_server.url, with_server.url, key, cube_id, gen.questions(args.queries + 20))
    report.update(provenance(" ".join(["python benchmarks/metrics_bench.py", *argv])), size=args.size,
                  machine=machine())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("without_metrics", "with_metrics", "p50_overhead_pct",
                                             "in_process_cost_us", "meets_goal")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
