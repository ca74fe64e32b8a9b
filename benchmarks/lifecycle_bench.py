"""Cube lifecycle timings: archive, import into another tenant, fork, snapshot, restore and merge of one cube.

A server runs in this process (``serve_in_thread``) over a fresh database on the local Postgres (dropped at the
end) and a temporary data dir. N generated memories (sentences about people, places and dates, in sessions, so
the graph has session, entity and similarity edges) are written through the API and enriched; then each
lifecycle call is timed over HTTP, once.

    python benchmarks/lifecycle_bench.py --memories 1000
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from app.config import Settings
from app.embedded import serve_in_thread

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"
PEOPLE = ["Alice", "Bruno", "Chen", "Dara", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun"]
PLACES = ["Lisbon", "Nairobi", "Osaka", "Quito", "Tromsø", "Hanoi", "Porto", "Accra", "Perth", "Graz"]
THINGS = ["a bicycle", "a sourdough starter", "a violin", "a tent", "a telescope", "a kayak", "a drone"]


def sentence(rng: random.Random, i: int) -> str:
    who, where, what = rng.choice(PEOPLE), rng.choice(PLACES), rng.choice(THINGS)
    return f"{who} bought {what} in {where} on day {i} and told {rng.choice(PEOPLE)} about it"


def timed(label: str, rows: list[tuple[str, float, str]], call: Callable[[], httpx.Response],
          note: Callable[[httpx.Response], str]) -> httpx.Response:
    started = time.perf_counter()
    r = call()
    elapsed = time.perf_counter() - started
    assert r.status_code < 300, r.text
    rows.append((label, elapsed, note(r)))
    return r


def settled(label: str, rows: list[tuple[str, float, str]], client: httpx.Client, cube: str,
            started: float) -> None:
    """Imports answer before the fine indexes of their memories exist; this is when fine search sees them all."""
    while client.get(f"/v1/cubes/{cube}").json()["enrichment_pending"]:
        time.sleep(0.2)
    rows.append((label, time.perf_counter() - started, "from the request"))


def run(n: int, pg: str) -> list[tuple[str, float, str]]:
    db = f"memcubed_bench_{secrets.token_hex(3)}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    info = psycopg.conninfo.conninfo_to_dict(pg)
    url = f"postgresql://{info.get('user') or 'postgres'}@{info.get('host')}:{info.get('port') or 5432}/{db}"
    admin_key = "mck_bench_" + secrets.token_hex(8)
    try:
        with tempfile.TemporaryDirectory() as data, \
                serve_in_thread(Settings(database_url=url, data_dir=Path(data), admin_key=admin_key)) as base:
            return measure(base, admin_key, n)
    finally:
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def measure(base: str, admin_key: str, n: int) -> list[tuple[str, float, str]]:
    rng = random.Random(7)
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin_key}"}, timeout=600)
    keys = [admin.post("/v1/tenants", json={"name": f"bench-{i}"}).json()["api_key"] for i in range(2)]
    a, b = (httpx.Client(base_url=base, headers={"Authorization": f"Bearer {k}"}, timeout=600) for k in keys)
    cube = a.post("/v1/cubes", json={"name": "bench"}).json()["id"]
    for start in range(0, n, 500):
        turns = [{"role": "user", "content": sentence(rng, i)} for i in range(start, min(n, start + 500))]
        r = a.post(f"/v1/cubes/{cube}/messages", json={"session_id": f"s{start // 50}", "messages": turns})
        assert r.status_code == 201, r.text
    while a.get(f"/v1/cubes/{cube}").json()["enrichment_pending"]:
        time.sleep(0.5)
    rows: list[tuple[str, float, str]] = []
    body = timed("archive (GET, streamed)", rows, lambda: a.get(f"/v1/cubes/{cube}/archive"),
                 lambda r: f"{len(r.content) / 1e6:.2f} MB").content
    started = time.perf_counter()
    copy = timed("import-archive (another tenant)", rows,
                 lambda: b.post("/v1/cubes/import-archive", content=body,
                                headers={"Content-Type": "application/x-tar"}),
                 lambda r: f"{r.json()['counts']['memories']} memories, {r.json()['counts']['edges']} edges"
                 ).json()["cube"]["id"]
    settled("  … until its fine indexes are built", rows, b, copy, started)
    started = time.perf_counter()
    fork = timed("fork", rows, lambda: a.post(f"/v1/cubes/{cube}/fork", json={}),
                 lambda r: r.json()["embeddings"]).json()["cube"]["id"]
    settled("  … until its fine indexes are built", rows, a, fork, started)
    snap = timed("snapshot", rows, lambda: a.post(f"/v1/cubes/{cube}/snapshots", json={}),
                 lambda r: f"{r.json()['size_bytes'] / 1e6:.2f} MB").json()["id"]
    a.post(f"/v1/cubes/{cube}/messages", json={"session_id": "late", "messages": [
        {"role": "user", "content": sentence(rng, n + i)} for i in range(50)]})
    timed("restore (50 later memories archived)", rows,
          lambda: a.post(f"/v1/cubes/{cube}/snapshots/{snap}/restore"),
          lambda r: f"changed {r.json()['changed']}, archived {r.json()['archived']}")
    timed("merge (fork into original: all duplicates)", rows,
          lambda: a.post(f"/v1/cubes/{cube}/merge", json={"from_cube_id": fork}),
          lambda r: f"admitted {r.json()['admitted']}, merged {r.json()['merged']}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memories", type=int, default=1000)
    parser.add_argument("--pg-admin-url", default=LOCAL_PG)
    args = parser.parse_args(argv)
    rows = run(args.memories, args.pg_admin_url)
    load = os.getloadavg()[0]
    print(f"{args.memories} memories, load average {load:.1f} on {os.cpu_count()} cores\n")
    print("| operation | seconds | detail |\n|---|---|---|")
    for label, seconds, note in rows:
        print(f"| {label} | {seconds:.2f} | {note} |")


if __name__ == "__main__":
    main()

