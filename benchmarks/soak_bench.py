"""Soak: 50 clients on the mixed workload for five minutes over two processes, then every acknowledged write read
back and searched for on every process (issue 17: 0 errors, nothing lost).

A fresh database on the local Postgres gets one ``memcubed serve --workers 2``; one tenant's cube is seeded and
left to settle as in ``load_bench.py``, whose closed loop and mixed workload (add, fast search, fine search, 3
message turns, a context) this reuses. Every memory a write answered with (201) is kept. After the window and
once every process has applied the change log and finished enrichment, each kept memory must be readable
(``GET /v1/memories/{id}``: 200) and, when still active and its text is unique among the kept ones (the
assistant's "Noted, thanks" turn repeats in every exchange), among the top 10 of a fast search for its own text
on every process.

    python benchmarks/soak_bench.py            # writes benchmarks/results/soak_bench.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.load_bench import (  # noqa: E402 - after the path fix, as a script
    BATCH,
    Call,
    Ops,
    OpsFor,
    Say,
    closed_loop,
    mixed_ops,
    process_clients,
    settle,
)
from benchmarks.search_bench import (  # noqa: E402
    TextGenerator,
    _check,
    _client,
    _loadavg,
    bench_database,
    machine,
    provenance,
    seed,
    server_process,
    tenant_key,
)

RESULTS = Path(__file__).resolve().parent / "results"
WRITES = ("add", "messages")
MISSING_SHOWN = 20


def tracking(acked: list[tuple[str, str]], lock: threading.Lock) -> OpsFor:
    """The mixed workload, keeping (id, content) of every memory a write acknowledged."""
    def ops_for(http: httpx.Client, cube_id: str, gen: TextGenerator, queries: Sequence[str], offset: int) -> Ops:
        def kept(call: Call) -> Call:
            def write(i: int) -> httpx.Response:
                r = call(i)
                if r.status_code < 300:
                    with lock:
                        acked.extend((m["id"], m["content"]) for m in r.json()["memories"])
                return r
            return write
        return [(name, kept(call) if name in WRITES else call)
                for name, call in mixed_ops(http, cube_id, gen, queries, offset)]
    return ops_for


def verify(per_process: dict[int, httpx.Client], cube_id: str, acked: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Each acknowledged memory readable (from the processes in turn), and the active ones with unique text found by
    a search for it on every process (each client is kept on its process: one request at a time on each)."""
    texts = Counter(content for _, content in acked)
    pids = list(per_process)
    locks = {pid: threading.Lock() for pid in pids}

    def read(n: int, memory_id: str) -> tuple[int, str | None]:
        pid = pids[n % len(pids)]
        with locks[pid]:
            r = per_process[pid].get(f"/v1/memories/{memory_id}")
        return r.status_code, (r.json().get("status") if r.status_code == 200 else None)

    def found(pid: int, memory_id: str, content: str) -> bool:
        with locks[pid]:
            r = per_process[pid].post("/v1/search", json={"query": content, "cube_ids": [cube_id], "top_k": 10,
                                                          "mode": "fast"})
        return memory_id in {h["memory"]["id"] for h in _check(r, "search")["results"]}

    with ThreadPoolExecutor(len(pids)) as pool:  # one request at a time per process, as the clients allow
        reads = list(pool.map(lambda n: read(n, acked[n][0]), range(len(acked))))
        unreadable = [a[0] for a, (code, _) in zip(acked, reads) if code != 200]
        statuses = Counter(status for code, status in reads if code == 200)
        checked = [a for a, (_, status) in zip(acked, reads) if status == "active" and texts[a[1]] == 1]
        asks = [(pid, mid, content) for mid, content in checked for pid in per_process]
        hits = list(pool.map(lambda x: found(*x), asks))
    missing = sorted({f"{mid} on {pid}" for (pid, mid, _), hit in zip(asks, hits) if not hit})
    return {"acknowledged": len(acked), "readable": len(acked) - len(unreadable),
            "unreadable": unreadable[:MISSING_SHOWN],
            "statuses": dict(statuses), "searched": len(checked), "processes_searched": len(per_process),
            "not_found": len(missing), "not_found_shown": missing[:MISSING_SHOWN],
            "not_searched_repeated_text": sum(1 for _, c in acked if texts[c] > 1)}


def run(url: str, admin_key: str, *, clients: int = 50, duration: float = 300.0, memories: int = 600,
        processes: int = 2, seed_value: int = 0, settle_timeout: float = 900.0,
        say: Say = lambda _m: None) -> dict[str, Any]:
    """Seed, settle, soak, settle, verify; the server is the caller's (the smoke test runs it in-process)."""
    key = tenant_key(url, admin_key)
    load_start = _loadavg()
    with _client(url, key) as http:
        cube_id = str(_check(http.post("/v1/cubes", json={"name": "soak"}), "cube")["id"])
        say(f"seeding {memories} memories")
        seed(http, cube_id, TextGenerator(seed_value), memories, BATCH)
    queries = TextGenerator(seed_value + 1).questions(200)
    per_process = process_clients(url, key, processes)
    acked: list[tuple[str, str]] = []
    try:
        before = settle(per_process, cube_id, settle_timeout)
        say(f"{len(per_process)} of {processes} processes answered; {clients} clients for {duration:g} s")
        soak = closed_loop(url, key, cube_id, queries, tracking(acked, threading.Lock()), clients, duration,
                           seed_value + 500)
        soak["load_1m_after"] = _loadavg()
        say(f"{soak['qps']:.1f} QPS, {soak['error_count']} errors, {len(acked)} memories acknowledged; settling")
        after = settle(per_process, cube_id, settle_timeout)
        say("reading and searching every acknowledged memory")
        checked = verify(per_process, cube_id, acked)
    finally:
        for h in per_process.values():
            h.close()
    lost = (checked["acknowledged"] - checked["readable"]) + checked["not_found"]
    return {"processes": processes, "processes_answering": len(per_process), "clients": clients,
            "duration_s": duration, "load_1m_start": load_start, "settle": [before, after], "soak": soak,
            "verify": checked, "goals": {
                "errors": {"value": soak["error_count"], "target": "0", "met": soak["error_count"] == 0},
                "lost": {"value": lost, "target": "0", "met": lost == 0}}}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--processes", type=int, default=2, help="serve --workers")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--duration", type=float, default=300.0, help="seconds of the soak")
    p.add_argument("--memories", type=int, default=600, help="memories seeded into the cube first")
    p.add_argument("--seed", type=int, default=0, help="text generator seed")
    p.add_argument("--settle-timeout", type=float, default=900.0)
    p.add_argument("--out", type=Path, default=RESULTS / "soak_bench.json")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    shown = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(shown)
    say: Say = (lambda _m: None) if args.no_progress else (lambda m: print(m, file=sys.stderr, flush=True))
    with bench_database() as database_url, tempfile.TemporaryDirectory(prefix="memcubed-soak-") as tmp:
        if database_url is None:
            print("no Postgres at the local address: the processes of --workers need one database", file=sys.stderr)
            return 2
        say(f"starting memcubed serve --workers {args.processes}")
        with server_process(Path(tmp), database_url, extra_args=["--workers", str(args.processes)]) as server:
            result = run(server.url, server.admin_key, clients=args.clients, duration=args.duration,
                         memories=args.memories, processes=args.processes, seed_value=args.seed,
                         settle_timeout=args.settle_timeout, say=say)
    report = {"benchmark": "soak",
              **provenance(" ".join(["python benchmarks/soak_bench.py", *map(shlex.quote, shown)])),
              **result, "machine": machine()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    v = result["verify"]
    print(f"{result['clients']} clients x {result['duration_s']:g} s on {result['processes']} processes: "
          f"{result['soak']['qps']:.1f} QPS, {result['soak']['error_count']} errors; {v['acknowledged']} memories "
          f"acknowledged, {v['readable']} readable, {v['not_found']} of {v['searched']} x {v['processes_searched']} "
          f"searches missed; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
