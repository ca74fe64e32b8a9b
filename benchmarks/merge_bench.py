"""Merging a big cube: wall time and peak memory (RSS) of the process that merges.

Two cubes of one tenant are seeded in a child process, straight through the memory service (``add_embedded``
with synthetic unit vectors, so no embedding model runs): ``target`` holds half of the memories, ``source`` the
other half, a quarter of which are near copies of target memories (same numbers, a word more, the vector nudged)
and another tenth exact copies. Then this process starts the service over the same database and data dir, stops
its background enrichment (so nothing but the merge runs), and merges ``source`` into ``target`` through the
merge service (the code path of ``POST /v1/cubes/{id}/merge``, without HTTP: the body is three ids). Peak RSS is
``ru_maxrss`` of this process, which did nothing before but start the service; the RSS just before the merge is
given too, so the merge's own share is their difference.

    python benchmarks/merge_bench.py --memories 10000 30000 100000

Each size runs on a fresh database on the local Postgres (dropped at the end); results go to
``benchmarks/results/merge_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from app.config import Settings
from app.container import Container, build
from app.principal import Principal
from app.schemas.cubes import CubeCreate
from app.schemas.lifecycle import MergeRequest
from app.schemas.memories import MemoryIn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.search_bench import provenance  # noqa: E402 - after the path fix, as a script

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"
RESULTS = Path(__file__).parent / "results" / "merge_bench.json"
SEED_BATCH = 5000
PEOPLE = ["Alice", "Bruno", "Chen", "Dara", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun"]
THINGS = ["a bicycle", "a sourdough starter", "a violin", "a tent", "a telescope", "a kayak", "a drone"]


def sentence(i: int) -> str:
    return f"{PEOPLE[i % 10]} bought {THINGS[i % 7]} on day {i} and told {PEOPLE[(i * 7) % 10]} about it"


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def start(url: str, data: Path, admin_key: str) -> Container:
    container = build(Settings(database_url=url, data_dir=data, admin_key=admin_key, schedule_minutes=0,
                               rate_limit_enabled=False))
    container.enricher.stop()  # enrichment of the seeded memories would compete with what is measured
    return container


def seed(url: str, data: Path, admin_key: str, n: int) -> dict[str, str]:
    """Both cubes, written in batches; returns the ids the merge phase needs."""
    container = start(url, data, admin_key)
    try:
        admin = container.auth.authenticate(admin_key)
        created = container.auth.create_tenant(admin, "bench")
        assert created.api_key is not None
        principal = container.auth.authenticate(created.api_key)
        target = container.cubes.create(principal, CubeCreate(name="target")).id
        source = container.cubes.create(principal, CubeCreate(name="source")).id
        dim = container.embedder.dim
        rng = np.random.default_rng(7)
        half = n // 2
        target_vecs = unit(rng.standard_normal((half, dim)))
        write(container, principal, target, [sentence(i) for i in range(half)], target_vecs)
        texts, vecs = [], unit(rng.standard_normal((n - half, dim)))
        for k in range(n - half):
            if k % 4 == 0:  # near copy: a word more, same numbers, the vector nudged (cosine ~0.99)
                texts.append(sentence(k) + " indeed")
                vecs[k] = unit((target_vecs[k] + 0.1 * rng.standard_normal(dim) / np.sqrt(dim))[None])[0]
            elif k % 10 == 1:  # exact copy
                texts.append(sentence(k))
                vecs[k] = target_vecs[k]
            else:
                texts.append(sentence(half + k))
        write(container, principal, source, texts, vecs)
        return {"api_key": created.api_key, "target": str(target), "source": str(source)}
    finally:
        container.close()


def write(container: Container, principal: Principal, cube: uuid.UUID, texts: list[str], vecs: np.ndarray) -> None:
    for at in range(0, len(texts), SEED_BATCH):
        items = [MemoryIn(content=t) for t in texts[at:at + SEED_BATCH]]
        container.memories.add_embedded(principal, cube, items, vecs[at:at + SEED_BATCH])


def rss_now() -> int:
    """Resident set size now, in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def merge(url: str, data: Path, admin_key: str, ids: dict[str, str]) -> dict[str, Any]:
    container = start(url, data, admin_key)
    try:
        principal = container.auth.authenticate(ids["api_key"])
        before = rss_now()
        started = time.perf_counter()
        result = container.merges.merge(principal, uuid.UUID(ids["target"]),
                                        MergeRequest(from_cube_id=uuid.UUID(ids["source"])))
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {"merge_seconds": round(seconds, 2), "rss_before_merge_mb": round(before / 2**20),
                "peak_rss_mb": round(peak / 2**20), "considered": result.considered, "admitted": result.admitted,
                "merged": result.merged, "rejected": result.rejected}
    finally:
        container.close()


def one(n: int, pg: str) -> dict[str, Any]:
    db = f"memcubed_mergebench_{secrets.token_hex(3)}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    info = psycopg.conninfo.conninfo_to_dict(pg)
    url = f"postgresql://{info.get('user') or 'postgres'}@{info.get('host')}:{info.get('port') or 5432}/{db}"
    admin_key = "mck_bench_" + secrets.token_hex(8)
    try:
        with tempfile.TemporaryDirectory() as data:
            started = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--seed-into", url, data, admin_key, str(n)],
                                 check=True, capture_output=True, text=True)
            seed_seconds = time.perf_counter() - started
            ids = json.loads(out.stdout.strip().splitlines()[-1])
            load_before = os.getloadavg()[0]
            row = {"memories": n, "seed_seconds": round(seed_seconds, 1),
                   **merge(url, Path(data), admin_key, ids),
                   "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
            return row
    finally:
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memories", type=int, nargs="+", default=[10000])
    parser.add_argument("--pg-admin-url", default=LOCAL_PG)
    parser.add_argument("--seed-into", nargs=4, metavar=("URL", "DATA", "ADMIN_KEY", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seed_into:
        url, data, admin_key, n = args.seed_into
        print(json.dumps(seed(url, Path(data), admin_key, int(n))))
        return
    rows = []
    for n in args.memories:
        rows.append(one(n, args.pg_admin_url))
        print(json.dumps(rows[-1]), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        **provenance("python benchmarks/merge_bench.py --memories " + " ".join(map(str, args.memories))),
        "cpu_count": os.cpu_count(), "runs": rows,
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
