"""Load: what one and two ``memcubed serve`` processes sustain under many clients at once (issue 16).

For each process count P in ``--processes`` a fresh database on the local Postgres gets one ``memcubed serve
--workers P`` subprocess (the P processes share that database and one port). One tenant's cube is seeded with
``--memories`` generated memories (batches of 50) and left to settle: every process has applied the change log
and finished the cube's enrichment (fine indexes), and has answered each operation once (models loaded). Then:

- fast search only, ``--fast-concurrency`` closed-loop clients for ``--duration`` seconds: QPS and latency;
- the mixed workload at each of ``--concurrency`` clients for ``--duration`` seconds: each client sends, in turn,
  add one memory, fast search, fine search, post 3 message turns, context (``budget: auto``, no cache).

A client is a thread with its own keep-alive connection, so it stays on the process the kernel gave it (the
report counts connections per process); a non-2xx answer or a failed request is an error, counted by
operation and status. Issue 16's goals: 2 processes serve ≥ 1.7 times the fast-search QPS of 1; with 50 clients
on the mixed workload (the largest P), no error and fast-search p95 ≤ 250 ms. The client threads share this
machine's cores with the server: on 2 cores the figures are the pair's, and the load average says how busy
the machine was.

    python benchmarks/load_bench.py                     # writes benchmarks/results/load_bench.json
"""

from __future__ import annotations

import argparse
import json
import shlex
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
    _ints,
    _loadavg,
    bench_database,
    latency_stats,
    machine,
    provenance,
    seed,
    server_process,
    tenant_key,
)

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_QPS_RATIO = 1.7  # QPS(2 processes) / QPS(1 process)
GOAL_CLIENTS = 50
GOAL_FAST_P95_MS = 250.0
TOP_K = 10
BATCH = 50
REQUEST_TIMEOUT_S = 60.0

Call = Callable[[int], httpx.Response]
Ops = list[tuple[str, Call]]
Say = Callable[[str], None]


def mixed_ops(http: httpx.Client, cube_id: str, gen: TextGenerator, queries: Sequence[str], offset: int) -> Ops:
    """The mixed workload, one of each by name: an agent's writes and reads in equal shares."""
    def q(i: int) -> str:
        return queries[(offset + i) % len(queries)]

    def search(mode: str) -> Call:
        return lambda i: http.post("/v1/search", json={"query": q(i), "cube_ids": [cube_id], "mode": mode,
                                                       "top_k": TOP_K})

    def messages(i: int) -> httpx.Response:
        turns = [{"role": "user", "speaker": "A", "content": gen.memory()["content"]},
                 {"role": "assistant", "speaker": "B", "content": "Noted, thanks for telling me."},
                 {"role": "user", "speaker": "A", "content": gen.memory()["content"]}]
        return http.post(f"/v1/cubes/{cube_id}/messages", json={"session_id": f"load-{offset}-{i // 10}",
                                                                "messages": turns})

    return [
        ("add", lambda i: http.post(f"/v1/cubes/{cube_id}/memories", json={"memories": [gen.memory()]})),
        ("fast_search", search("fast")),
        ("fine_search", search("fine")),
        ("messages", messages),
        ("context", lambda i: http.post("/v1/context", json={"query": q(i), "cube_ids": [cube_id],
                                                             "budget": "auto", "use_cache": False})),
    ]


def fast_ops(http: httpx.Client, cube_id: str, gen: TextGenerator, queries: Sequence[str], offset: int) -> Ops:
    return [op for op in mixed_ops(http, cube_id, gen, queries, offset) if op[0] == "fast_search"]


OpsFor = Callable[[httpx.Client, str, TextGenerator, Sequence[str], int], Ops]


def _pid(http: httpx.Client) -> int:
    """The process this client's connection reached (``/readyz`` names it)."""
    return int(_check(http.get("/readyz"), "readyz")["process"]["pid"])


def closed_loop(url: str, key: str, cube_id: str, queries: Sequence[str], ops_for: OpsFor, clients: int,
                duration: float, gen_seed: int) -> dict[str, Any]:
    """``clients`` threads, each sending its operations in turn, the next as soon as the last answered, for
    ``duration`` seconds from when all are connected; latency of each answered request, errors by status."""
    ms: dict[str, list[float]] = {}
    errors: Counter[str] = Counter()
    pids: Counter[int] = Counter()
    failures: list[BaseException] = []
    lock = threading.Lock()
    window: list[float] = []
    ready = threading.Barrier(clients, action=lambda: window.append(time.perf_counter() + duration))

    def client(t: int) -> None:
        try:
            with _client(url, key, REQUEST_TIMEOUT_S) as http:
                ops = ops_for(http, cube_id, TextGenerator(gen_seed + t), queries, 37 * t)
                pid = _pid(http)  # also opens the connection before timing
                with lock:
                    pids[pid] += 1
                    for name, _ in ops:
                        ms.setdefault(name, [])
                ready.wait()
                i = t  # the clients start at different operations
                while time.perf_counter() < window[0]:
                    name, call = ops[i % len(ops)]
                    t0 = time.perf_counter()
                    try:
                        status: int | str = call(i).status_code
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    took = (time.perf_counter() - t0) * 1000
                    i += 1
                    with lock:
                        if isinstance(status, int) and status < 300:
                            ms[name].append(took)
                        else:
                            errors[f"{name} {status}"] += 1
        except BaseException as exc:  # surfaced in the caller's thread below
            failures.append(exc)
            ready.abort()

    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if failures:
        raise RuntimeError(f"closed loop at {clients} clients failed: {failures[0]!r}") from failures[0]
    wall = time.perf_counter() - (window[0] - duration)  # to the last answer, past the window's end
    answered = sum(len(v) for v in ms.values())
    return {"clients": clients, "seconds": round(wall, 2), "requests": answered + sum(errors.values()),
            "qps": round(answered / wall, 1), "errors": dict(errors), "error_count": sum(errors.values()),
            "connections_per_process": sorted(pids.values(), reverse=True),
            "ops": {name: {"n": len(v), "qps": round(len(v) / wall, 1), **latency_stats(v)} for name, v in ms.items()}}


def process_clients(url: str, key: str, processes: int, timeout: float = 120.0) -> dict[int, httpx.Client]:
    """One keep-alive client per serving process, found by opening connections until each pid answered (the
    kernel hands a new connection to whichever process accepts first; one still starting accepts none)."""
    found: dict[int, httpx.Client] = {}
    deadline = time.monotonic() + timeout
    while len(found) < processes and time.monotonic() < deadline:
        http = _client(url, key, REQUEST_TIMEOUT_S)
        pid = _pid(http)
        if pid in found:
            http.close()
            time.sleep(0.05)
        else:
            found[pid] = http
    return found


def settle(per_process: dict[int, httpx.Client], cube_id: str, timeout: float) -> dict[str, Any]:
    """Wait until every process has applied the change log as far as any has and has no enrichment pending on
    the cube, twice in a row: fine search then measures its indexes, not their building."""
    started = time.monotonic()
    calm = 0
    while True:
        applied = [_check(h.get("/readyz"), "readyz")["process"]["applied_through"] for h in per_process.values()]
        pending = [_check(h.get(f"/v1/cubes/{cube_id}"), "cube")["enrichment_pending"] for h in per_process.values()]
        calm = calm + 1 if len(set(applied)) == 1 and not any(pending) else 0
        if calm >= 2 or time.monotonic() - started > timeout:
            return {"settled": calm >= 2, "seconds": round(time.monotonic() - started, 1)}
        time.sleep(0.5 if calm else 1.0)


def run(url: str, admin_key: str, *, memories: int = 600, duration: float = 15.0,
        concurrency: Sequence[int] = (1, 8, 50), fast_concurrency: int = 8, processes: int = 1,
        seed_value: int = 0, settle_timeout: float = 900.0, say: Say = lambda _m: None) -> dict[str, Any]:
    """One server (``processes`` of them on ``url``): seed, settle, warm each process, then the fast-search
    phase and the mixed sweep. Process management is the caller's, so the smoke test can run it in-process."""
    key = tenant_key(url, admin_key)
    tag = f"P={processes}"
    load_start = _loadavg()
    with _client(url, key) as http:
        cube_id = str(_check(http.post("/v1/cubes", json={"name": f"load-{processes}"}), "cube")["id"])
        say(f"{tag}: seeding {memories} memories in batches of {BATCH}")
        ingest = seed(http, cube_id, TextGenerator(seed_value), memories, BATCH)
    queries = TextGenerator(seed_value + 1).questions(200)
    per_process = process_clients(url, key, processes)
    try:
        settled = [settle(per_process, cube_id, settle_timeout)]
        say(f"{tag}: {len(per_process)} of {processes} processes answered; settled in {settled[0]['seconds']} s; "
            "warming each")
        for n, http in enumerate(per_process.values()):  # first calls load models and fill caches, per process
            for i, (name, call) in enumerate(mixed_ops(http, cube_id, TextGenerator(seed_value + 2 + n), queries, n)):
                _check(call(i), f"warm-up {name}")
        settled.append(settle(per_process, cube_id, settle_timeout))
        say(f"{tag}: fast search, {fast_concurrency} clients, {duration:g} s")
        fast = closed_loop(url, key, cube_id, queries, fast_ops, fast_concurrency, duration, seed_value + 100)
        fast["load_1m_after"] = _loadavg()
        say(f"{tag}:   {fast['qps']:.1f} QPS, p95 {fast['ops']['fast_search']['p95_ms']:.1f} ms, "
            f"errors {fast['error_count']}, connections per process {fast['connections_per_process']}")
        mixed: list[dict[str, Any]] = []
        for level, clients in enumerate(concurrency):
            settled.append(settle(per_process, cube_id, settle_timeout))  # the last level's enrichment, not ours
            say(f"{tag}: mixed workload, {clients} clients, {duration:g} s")
            rep = closed_loop(url, key, cube_id, queries, mixed_ops, clients, duration,
                              seed_value + 1000 * (level + 1))
            rep["load_1m_after"] = _loadavg()
            mixed.append(rep)
            f = rep["ops"].get("fast_search", {})
            say(f"{tag}:   {rep['qps']:.1f} QPS, fast p95 {f.get('p95_ms', 0):.1f} ms, errors {rep['error_count']}")
    finally:
        for http in per_process.values():
            http.close()
    return {"processes": processes, "processes_answering": len(per_process), "cube_id": cube_id,
            "ingest": ingest, "settle": settled, "load_1m_start": load_start, "fast": fast, "mixed": mixed}


def goals(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Issue 16's goals from the runs; ``met`` is null where the runs do not reach a goal's setting."""
    by_p = {r["processes"]: r for r in runs}
    ratio = (round(by_p[2]["fast"]["qps"] / max(by_p[1]["fast"]["qps"], 1e-9), 2)
             if 1 in by_p and 2 in by_p else None)
    top = by_p[max(by_p)]
    level = max(top["mixed"], key=lambda m: (m["clients"] == GOAL_CLIENTS, m["clients"]))
    at_goal = level["clients"] == GOAL_CLIENTS
    p95 = level["ops"].get("fast_search", {}).get("p95_ms")
    where = {"processes": top["processes"], "clients": level["clients"]}
    return {
        "fast_qps_ratio": {"value": ratio, "target": f">= {GOAL_QPS_RATIO}",
                           "met": None if ratio is None else ratio >= GOAL_QPS_RATIO},
        "mixed_errors": {**where, "value": level["error_count"], "target": "0",
                         "met": level["error_count"] == 0 if at_goal else None},
        "mixed_fast_p95_ms": {**where, "value": p95, "target": f"<= {GOAL_FAST_P95_MS:g}",
                              "met": p95 is not None and p95 <= GOAL_FAST_P95_MS if at_goal else None},
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--processes", type=_ints, default=[1, 2], help="serve --workers values, e.g. 1,2")
    p.add_argument("--concurrency", type=_ints, default=[1, 8, 50], help="mixed-workload clients, e.g. 1,8,50")
    p.add_argument("--fast-concurrency", type=int, default=8, help="clients of the fast-search QPS phase")
    p.add_argument("--memories", type=int, default=600, help="memories seeded into the cube (a LoCoMo-size cube)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of each phase")
    p.add_argument("--seed", type=int, default=0, help="text generator seed")
    p.add_argument("--settle-timeout", type=float, default=900.0,
                   help="longest wait for the processes to apply the log and finish enrichment")
    p.add_argument("--out", type=Path, default=RESULTS / "load_bench.json")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    shown = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(shown)
    say: Say = (lambda _m: None) if args.no_progress else (lambda m: print(m, file=sys.stderr, flush=True))
    mach_before = machine()
    runs: list[dict[str, Any]] = []
    for processes in args.processes:
        with bench_database() as database_url, tempfile.TemporaryDirectory(prefix="memcubed-load-") as tmp:
            if database_url is None:
                print("no Postgres at the local address: the processes of --workers need one database",
                      file=sys.stderr)
                return 2
            say(f"P={processes}: starting memcubed serve --workers {processes}")
            with server_process(Path(tmp), database_url, extra_args=["--workers", str(processes)]) as server:
                runs.append(run(server.url, server.admin_key, memories=args.memories, duration=args.duration,
                                concurrency=args.concurrency, fast_concurrency=args.fast_concurrency,
                                processes=processes, seed_value=args.seed, settle_timeout=args.settle_timeout,
                                say=say))
    report = {"benchmark": "load",
              **provenance(" ".join(["python benchmarks/load_bench.py", *map(shlex.quote, shown)])),
              "parameters": {"memories": args.memories, "duration_s": args.duration, "processes": args.processes,
                             "concurrency": args.concurrency, "fast_concurrency": args.fast_concurrency,
                             "top_k": TOP_K, "seed": args.seed},
              "runs": runs, "goals": goals(runs),
              "machine": {**machine(), "loadavg_before": mach_before.get("loadavg")}}
    report["fast_qps_ratio"] = report["goals"]["fast_qps_ratio"]["value"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for r in runs:
        f = r["fast"]
        print(f"P={r['processes']}: fast search {f['qps']:.1f} QPS at {f['clients']} clients "
              f"(p50 {f['ops']['fast_search']['p50_ms']:.1f}, p95 {f['ops']['fast_search']['p95_ms']:.1f} ms); mixed "
              + ", ".join(f"c={m['clients']} {m['qps']:.1f} QPS, {m['error_count']} errors" for m in r["mixed"]))
    print("goals: " + "; ".join(f"{k} {g['value']} ({g['target']}): "
                                f"{'n/a' if g['met'] is None else 'met' if g['met'] else 'not met'}"
                                for k, g in report["goals"].items()) + f"; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
