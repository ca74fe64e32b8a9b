"""One hostile tenant must not cost the others: tenant A floods at 10 times its per-key rate limit with oversized and
pathological bodies while tenant B runs its normal workload (add a memory, search, post messages, ask for a
context), paced under its own limit. Issue 17's goal: B's p95 under the flood at most twice its p95 without it,
and no error for B.

Unloaded and loaded blocks alternate in one run on one ``memcubed serve`` subprocess (rate limits on), so both
conditions see the same machine; B's latencies are pooled per condition. A's bodies, in turn:

- a 1 MB message of "forget please please …" (under the body limit, over the memory limit → 413);
- a message of 30 KB of "forget please please …" with ``budget: mid`` (under every limit: the forget-request
  detector and the entity extractor read it whole);
- a search whose query is a capitalised word and 1 MB of spaces (→ 422);
- a 2 MB body (over the body limit → 413 before it is read);

    python benchmarks/abuse_bench.py                     # writes benchmarks/results/abuse_bench.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

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

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_P95_RATIO = 2.0
MB = 1024 * 1024


def hostile_bodies(cube_id: str) -> list[tuple[str, str, bytes]]:
    """(name, path, JSON body) of each kind of flood request."""
    def messages(content: str, **extra: Any) -> bytes:
        return json.dumps({"session_id": "flood", "messages": [{"role": "user", "content": content}], **extra}).encode()

    forget_1mb = ("forget " + "please " * (MB // 7))[: MB - 200]
    return [
        ("forget_1mb", f"/v1/cubes/{cube_id}/messages", messages(forget_1mb)),
        ("forget_30kb_mid", f"/v1/cubes/{cube_id}/messages",
         messages(("Forget " + "please " * 5000)[:30_000], budget="mid")),
        ("spaces_1mb_query", "/v1/search",
         json.dumps({"query": "Alice" + " " * (MB - 200), "cube_ids": [cube_id]}).encode()),
        ("over_limit_2mb", f"/v1/cubes/{cube_id}/memories",
         json.dumps({"memories": [{"content": "x" * (2 * MB)}]}).encode()),
    ]


class Flood:
    """``rate`` requests a second from ``threads`` threads while ``on`` is set; statuses counted per body kind."""

    def __init__(self, url: str, key: str, cube_id: str, rate: float, threads: int) -> None:
        self.url, self.key, self.rate, self.threads = url, key, rate, threads
        self.bodies = hostile_bodies(cube_id)
        self.on = threading.Event()
        self.stop = threading.Event()
        self.statuses: dict[str, Counter[int]] = {name: Counter() for name, _, _ in self.bodies}
        self.sent = 0
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> None:
        for w in self._workers:
            w.start()

    def close(self) -> None:
        self.stop.set()
        self.on.set()
        for w in self._workers:
            w.join(timeout=60)

    def _loop(self, index: int) -> None:
        interval = self.threads / self.rate  # each thread's share of the rate
        with httpx.Client(base_url=self.url, timeout=120,
                          headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}) as http:
            n = index
            while not self.stop.is_set():
                self.on.wait()
                if self.stop.is_set():
                    return
                started = time.monotonic()
                name, path, body = self.bodies[n % len(self.bodies)]
                n += 1
                try:
                    status = http.post(path, content=body).status_code
                except httpx.HTTPError:
                    status = 0  # the connection was closed on it (an over-limit body)
                with self._lock:
                    self.statuses[name][status] += 1
                    self.sent += 1
                time.sleep(max(0.0, interval - (time.monotonic() - started)))


def workload(http: httpx.Client, cube_id: str, gen: TextGenerator, queries: Sequence[str]) -> list[
        tuple[str, Callable[[int], httpx.Response]]]:
    """Tenant B's normal operations, by name."""
    return [
        ("add", lambda i: http.post(f"/v1/cubes/{cube_id}/memories",
                                    json={"memories": [gen.memory()]})),
        ("search", lambda i: http.post("/v1/search", json={"query": queries[i % len(queries)],
                                                           "cube_ids": [cube_id], "top_k": 10})),
        ("messages", lambda i: http.post(f"/v1/cubes/{cube_id}/messages", json={
            "session_id": f"m{i % 20}", "messages": [{"role": "user", "content": gen.memory()["content"]},
                                                     {"role": "assistant", "content": "Noted."}]})),
        ("context", lambda i: http.post("/v1/context", json={"query": queries[i % len(queries)],
                                                             "cube_ids": [cube_id], "budget": "low",
                                                             "use_cache": False})),
    ]


def run(url: str, admin_key: str, *, limit: int, block_seconds: float, blocks: int, pace: float,
        flood_threads: int, seed_size: int = 200) -> dict[str, Any]:
    key_a, key_b = tenant_key(url, admin_key), tenant_key(url, admin_key)
    gen = TextGenerator(7)
    with _client(url, key_a) as a, _client(url, key_b) as b:
        cube_a = str(_check(a.post("/v1/cubes", json={"name": "flooded"}), "cube")["id"])
        cube_b = str(_check(b.post("/v1/cubes", json={"name": "normal"}), "cube")["id"])
        for _ in range(0, seed_size, 50):  # paced under B's limit
            _check(b.post(f"/v1/cubes/{cube_b}/memories",
                          json={"memories": gen.memories(50)}), "seed")
            time.sleep(1.0)
        queries = gen.questions(50)
        ops = workload(b, cube_b, gen, queries)
        for i, (name, call) in enumerate(ops * 3):  # warm: first calls load models and fill caches
            _check(call(i), f"warm-up {name}")
            time.sleep(1.0 / pace)
        flood = Flood(url, key_a, cube_a, rate=10 * limit, threads=flood_threads)
        flood.start()
        ms: dict[str, dict[str, list[float]]] = {c: {name: [] for name, _ in ops} for c in ("unloaded", "loaded")}
        errors: dict[str, Counter[str]] = {"unloaded": Counter(), "loaded": Counter()}
        i = 0
        try:
            for block in range(2 * blocks):
                condition = "loaded" if block % 2 else "unloaded"
                (flood.on.set if condition == "loaded" else flood.on.clear)()
                time.sleep(1.0)  # let the flood reach its rate (or drain)
                end = time.monotonic() + block_seconds
                last = 0.0
                while time.monotonic() < end:
                    time.sleep(max(0.0, last + 1.0 / pace - time.monotonic()))  # never over B's own limit
                    last = time.monotonic()
                    name, call = ops[i % len(ops)]
                    r = call(i)
                    took = (time.monotonic() - last) * 1000
                    i += 1
                    if r.status_code >= 300:
                        errors[condition][f"{name} {r.status_code}"] += 1
                    else:
                        ms[condition][name].append(took)
        finally:
            flood.close()
    report: dict[str, Any] = {"limit_per_key_per_s": limit, "flood_rate_per_s": 10 * limit,
                              "tenant_b_rate_per_s": pace, "block_seconds": block_seconds, "blocks_each": blocks}
    for condition in ("unloaded", "loaded"):
        pooled = [v for values in ms[condition].values() for v in values]
        report[condition] = {"all": {"n": len(pooled), **latency_stats(pooled)},
                             **{name: {"n": len(v), **latency_stats(v)} for name, v in ms[condition].items()},
                             "errors": dict(errors[condition])}
    report["flood"] = {"sent": flood.sent, "statuses": {k: {str(s): n for s, n in v.items()}
                                                        for k, v in flood.statuses.items()}}
    ratio = report["loaded"]["all"]["p95_ms"] / max(report["unloaded"]["all"]["p95_ms"], 1e-9)
    report["p95_ratio"] = round(ratio, 2)
    report["meets_goal"] = ratio <= GOAL_P95_RATIO and not errors["loaded"] and not errors["unloaded"]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=5, help="per-key rate limit (/s); A floods at 10 times it")
    parser.add_argument("--pace", type=float, default=4.0, help="tenant B's requests per second (under the limit)")
    parser.add_argument("--block-seconds", type=float, default=20.0)
    parser.add_argument("--blocks", type=int, default=3, help="blocks of each condition, alternating")
    parser.add_argument("--flood-threads", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS / "abuse_bench.json")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    env = {"MEMCUBED_RATE_LIMIT_ENABLED": "true", "MEMCUBED_RATE_LIMIT_KEY": f"{args.limit}/second",
           "MEMCUBED_RATE_LIMIT_TENANT": f"{2 * args.limit}/second"}
    with bench_database() as database_url, tempfile.TemporaryDirectory(prefix="memcubed-abuse-bench-") as tmp, \
            server_process(Path(tmp), database_url, extra_env=env) as server:
        report = run(server.url, server.admin_key, limit=args.limit, block_seconds=args.block_seconds,
                     blocks=args.blocks, pace=args.pace, flood_threads=args.flood_threads)
    report.update(provenance(" ".join(["python benchmarks/abuse_bench.py", *argv])), machine=machine())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("unloaded", "loaded", "flood", "p95_ratio", "meets_goal")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
