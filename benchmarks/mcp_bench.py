"""What the MCP layer costs: the ``recall`` tool over streamable HTTP at ``/mcp`` against the REST call it
wraps (``POST /v1/context``), query by query, alternating, on one ``memcubed serve`` subprocess (issue 20's
goal: at most 5 ms more at p50).

Both sides send the same body (``budget`` ``low`` by default) and the server's routed-result cache is off
(``MEMCUBED_ROUTING_CACHE_SIZE=0``), so neither side is served from a cache the other filled.

    python benchmarks/mcp_bench.py                      # writes benchmarks/results/mcp_bench.json

``run(url, tenant_key, ...)`` is the importable core (the smoke test runs it on the live test server).
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

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

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
    provenance,
    server_process,
    tenant_key,
)

GOAL_P50_OVERHEAD_MS = 5.0
RESULTS = Path(__file__).resolve().parent / "results"


async def _measure(url: str, key: str, cube_id: str, queries: Sequence[str], budget: str,
                   warmup: int) -> tuple[list[float], list[float]]:
    rest_ms: list[float] = []
    mcp_ms: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    async with (httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as rest,
                Client(streamable_http_client(f"{url}/mcp", http_client=httpx2.AsyncClient(
                    headers=headers, timeout=300))) as mcp):
        for i, query in enumerate(queries):
            body = {"query": query, "cube_ids": [cube_id], "budget": budget}
            # Alternate which side goes first, so neither always runs on a warmer server.
            timed: dict[str, tuple[float, Any]] = {}
            for side in (("rest", "mcp") if i % 2 == 0 else ("mcp", "rest")):
                t0 = time.perf_counter()
                if side == "rest":
                    answer: Any = _check(await rest.post("/v1/context", json=body), "context")
                else:
                    answer = await mcp.call_tool("recall", body)
                timed[side] = ((time.perf_counter() - t0) * 1000, answer)
            result = timed["mcp"][1]
            if result.is_error or result.structured_content is None:
                raise RuntimeError(f"recall failed: {result.content}")
            if result.structured_content["items"] != timed["rest"][1]["items"]:
                raise RuntimeError(f"recall and /v1/context disagree on {query!r}")
            if i >= warmup:
                rest_ms.append(timed["rest"][0])
                mcp_ms.append(timed["mcp"][0])
    return rest_ms, mcp_ms


def run(url: str, api_key: str, *, size: int = 300, queries: int = 200, warmup: int = 10,
        budget: str = "low", seed: int = 0) -> dict[str, Any]:
    """Seed ``size`` memories in a fresh cube, then time ``queries`` recalls both ways."""
    gen = TextGenerator(seed)
    with _client(url, api_key) as http:
        cube_id = _check(http.post("/v1/cubes", json={"name": f"mcp-bench-{time.time_ns()}"}), "cube")["id"]
        for start in range(0, size, 500):
            _check(http.post(f"/v1/cubes/{cube_id}/memories",
                             json={"memories": gen.memories(min(500, size - start))}), "seed")
        # Enrichment changes what the fine indexes return: let it finish so both sides see the same cube.
        while _check(http.get(f"/v1/cubes/{cube_id}"), "cube")["enrichment_pending"]:
            time.sleep(0.5)
    rest_ms, mcp_ms = asyncio.run(_measure(url, api_key, cube_id, gen.questions(queries + warmup), budget,
                                           warmup))
    rest, mcp = latency_stats(rest_ms), latency_stats(mcp_ms)
    overhead = round(mcp["p50_ms"] - rest["p50_ms"], 2)
    return {"size": size, "queries": len(rest_ms), "budget": budget, "rest": rest, "mcp": mcp,
            "p50_overhead_ms": overhead, "goal_p50_overhead_ms": GOAL_P50_OVERHEAD_MS,
            "meets_goal": overhead <= GOAL_P50_OVERHEAD_MS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=300, help="memories in the cube")
    parser.add_argument("--queries", type=int, default=200, help="recalls timed each way")
    parser.add_argument("--budget", default="low", help="budget sent by both sides")
    parser.add_argument("--out", type=Path, default=RESULTS / "mcp_bench.json")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    with bench_database() as database_url, tempfile.TemporaryDirectory(prefix="memcubed-mcp-bench-") as tmp, \
            server_process(Path(tmp), database_url, extra_env={"MEMCUBED_ROUTING_CACHE_SIZE": "0"}) as server:
        report = run(server.url, tenant_key(server.url, server.admin_key), size=args.size, queries=args.queries,
                     budget=args.budget)
    report.update(provenance(" ".join(["python benchmarks/mcp_bench.py", *argv])), machine=machine())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("rest", "mcp", "p50_overhead_ms", "meets_goal")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
