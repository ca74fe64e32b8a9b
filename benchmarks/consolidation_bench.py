"""Consolidation + forgetting on LoCoMo: active memories, index size, recall@10 and latency, before vs after.

Each LoCoMo conversation is ingested through the API (``POST /v1/cubes/{id}/messages``, one request per
session) into two identical cubes. Cube A is searched as it is ("before"); cube B gets a forgetting policy and a
consolidation job with forgetting (``POST /v1/cubes/{id}/consolidate {"forget": true}``), then is searched
("after"). Two cubes, so the "before" searches (which count as visits and raise heat) cannot bias what B forgets.

Recall@10: for each question of categories 1-4 with evidence, the share of its evidence turns found in the
top 10 dense results, averaged over questions. An evidence turn maps to the memory that holds it now: itself
if active; else through ``merged_into`` / ``superseded_by``; else (``mapped``) through a ``derived_from`` edge
to an active session summary. ``strict`` recall skips that last step (a summary holds only some of a session).

    python benchmarks/consolidation_bench.py --threshold 0.3 --out docs/benchmarks-consolidation.md

The LoCoMo file is read in place (``/work/shared/data/locomo/locomo10.json`` or ``--locomo``), never copied.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

LOCOMO = Path(os.environ.get("LOCOMO_PATH", "/work/shared/data/locomo/locomo10.json"))
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DIM_BYTES = 384 * 4 + 8  # one FAISS IndexIDMap2(IndexFlatIP) entry of MiniLM: the vector and its id


def parse_when(text: str) -> str | None:
    try:
        return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC).isoformat()
    except ValueError:
        return None


def sessions_of(conv: dict[str, Any]) -> list[tuple[str, str | None, list[dict[str, Any]]]]:
    out = []
    n = 1
    while f"session_{n}" in conv:
        out.append((f"session_{n}", parse_when(conv.get(f"session_{n}_date_time", "")), conv[f"session_{n}"]))
        n += 1
    return out


class Bench:
    def __init__(self, http: httpx.Client, db_url: str) -> None:
        self.http = http
        self.db_url = db_url

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            return list(conn.execute(query, params).fetchall())

    def ingest(self, cube: str, conv: dict[str, Any]) -> tuple[dict[str, str], dict[str, int], float]:
        dia: dict[str, str] = {}
        counts = {"admitted": 0, "merged": 0, "rejected": 0}
        started = time.perf_counter()
        for session_id, when, turns in sessions_of(conv):
            messages = [{"role": "user", "speaker": t["speaker"], "content": t["text"], "id": t["dia_id"],
                         **({"timestamp": when} if when else {})} for t in turns if t.get("text", "").strip()]
            r = self.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": session_id, "messages": messages})
            r.raise_for_status()
            for msg, item in zip(messages, r.json()["admission"]):
                counts[item["status"]] += 1
                target = item["merged_into"] if item["status"] == "merged" else item["memory_id"]
                if target:
                    dia[msg["id"]] = target
        return dia, counts, time.perf_counter() - started

    def resolve(self, cube: str, with_summaries: bool) -> dict[str, str]:
        """Every memory of the cube → the active memory that now holds it (missing when none does)."""
        rows = self.sql("SELECT id::text, status, merged_into::text, superseded_by::text FROM memories "
                        "WHERE cube_id = %s", (cube,))
        info = {r[0]: r for r in rows}
        summary_of: dict[str, str] = {}
        if with_summaries:
            for src, dst in self.sql("SELECT e.source_id::text, e.target_id::text FROM edges e JOIN memories m "
                                     "ON m.id = e.source_id WHERE e.cube_id = %s AND e.type = 'derived_from' "
                                     "AND m.status = 'active'", (cube,)):
                summary_of.setdefault(dst, src)
        out: dict[str, str] = {}
        for mid in info:
            cur, seen = mid, set()
            while cur in info and info[cur][1] != "active" and cur not in seen:
                seen.add(cur)
                nxt = info[cur][2] or info[cur][3]
                if nxt is None:
                    break
                cur = nxt
            if cur in info and info[cur][1] == "active":
                out[mid] = cur
            elif mid in summary_of:
                out[mid] = summary_of[mid]
        return out

    def recall(self, cube: str, qa: list[dict[str, Any]], dia: dict[str, str],
               holder: dict[str, str]) -> tuple[float, list[float]]:
        scores, lat = [], []
        for q in qa:
            evidence = [e for e in q.get("evidence", []) if e in dia]
            if not evidence:
                continue
            for attempt in range(3):  # a dropped keep-alive connection is retried once or twice
                try:
                    t0 = time.perf_counter()
                    r = self.http.post("/v1/search", json={"query": q["question"], "cube_ids": [cube], "top_k": 10})
                    lat.append((time.perf_counter() - t0) * 1000)
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            r.raise_for_status()
            hits = {h["memory"]["id"] for h in r.json()["results"]}
            found = sum(1 for e in evidence if holder.get(dia[e]) in hits)
            scores.append(found / len(evidence))
        return (sum(scores) / len(scores) if scores else 0.0), lat

    def settle(self, cube: str) -> None:
        """Wait until enrichment of the cube is done, so searches and the job do not race it."""
        while self.http.get(f"/v1/cubes/{cube}").json().get("enrichment_pending", 0):
            time.sleep(0.5)

    def active(self, cube: str) -> int:
        return int(self.sql("SELECT count(*) FROM memories WHERE cube_id = %s AND status = 'active'", (cube,))[0][0])


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] if xs else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--locomo", type=Path, default=LOCOMO)
    ap.add_argument("--conversations", type=int, default=10)
    ap.add_argument("--threshold", type=float, default=0.3, help="Forgetting policy threshold for cube B.")
    ap.add_argument("--half-life-days", type=float, default=30.0)
    ap.add_argument("--database-url", default=os.environ.get("MEMCUBED_DATABASE_URL"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import json

    from app.config import Settings
    from app.embedded import serve_in_thread

    data = json.loads(args.locomo.read_text())[: args.conversations]
    with ExitStack() as stack:
        db_url = args.database_url
        if db_url is None:
            name = f"memcubed_consolidation_{secrets.token_hex(3)}"
            with psycopg.connect(LOCAL_PG, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            db_url = LOCAL_PG.rsplit("/", 1)[0] + "/" + name

            def drop(name: str = name) -> None:
                with psycopg.connect(LOCAL_PG, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

            stack.callback(drop)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="memcubed-bench-"))
        admin_key = "mck_bench_" + secrets.token_hex(8)
        settings = Settings(database_url=db_url, data_dir=Path(tmp), admin_key=admin_key, schedule_minutes=0)
        url = stack.enter_context(serve_in_thread(settings))
        admin = stack.enter_context(httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"},
                                                 timeout=600))
        key = admin.post("/v1/tenants", json={"name": "bench"}).json()["api_key"]
        http = stack.enter_context(httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                                                timeout=600))
        bench = Bench(http, db_url)
        totals: dict[str, Any] = {"turns": 0, "admitted": 0, "merged": 0, "rejected": 0, "ingest_s": 0.0,
                                  "before": 0, "after": 0, "job_s": 0.0, "merged_job": 0, "superseded": 0,
                                  "summaries": 0, "forgotten": 0, "tier_changes": 0}
        rec: dict[str, list[float]] = {"before": [], "after": [], "strict": []}
        lat: dict[str, list[float]] = {"before": [], "after": []}
        for conv in data:
            qa = [q for q in conv["qa"] if q.get("category") in (1, 2, 3, 4)]
            cubes = [http.post("/v1/cubes", json={"name": f"{conv['sample_id']}-{side}"}).json()["id"]
                     for side in ("a", "b")]
            dia_a, counts, secs = bench.ingest(cubes[0], conv["conversation"])
            dia_b, _, secs_b = bench.ingest(cubes[1], conv["conversation"])
            for cube in cubes:
                bench.settle(cube)
            totals["turns"] += sum(len(t) for _, _, t in sessions_of(conv["conversation"]))
            for k, v in counts.items():
                totals[k] += v
            totals["ingest_s"] += secs + secs_b
            before = bench.active(cubes[0])
            r_before, l_before = bench.recall(cubes[0], qa, dia_a, bench.resolve(cubes[0], False))
            http.put(f"/v1/cubes/{cubes[1]}/policy", json={"threshold": args.threshold, "min_age_hours": 0,
                                                           "half_life_days": args.half_life_days}).raise_for_status()
            t0 = time.perf_counter()
            job = http.post(f"/v1/cubes/{cubes[1]}/consolidate", json={"forget": True}).json()
            while job["status"] not in ("done", "failed"):
                time.sleep(0.2)
                job = http.get(f"/v1/jobs/{job['id']}").json()
            job_s = time.perf_counter() - t0
            assert job["status"] == "done", job
            res = job["result"]
            after = bench.active(cubes[1])
            r_after, l_after = bench.recall(cubes[1], qa, dia_b, bench.resolve(cubes[1], True))
            r_strict, _ = bench.recall(cubes[1], qa, dia_b, bench.resolve(cubes[1], False))
            totals["before"] += before
            totals["after"] += after
            totals["job_s"] += job_s
            totals["merged_job"] += res["merged"]
            totals["superseded"] += res["superseded"]
            totals["summaries"] += res["summaries"]
            totals["forgotten"] += res.get("forgetting", {}).get("archived", 0)
            totals["tier_changes"] += res.get("tier_changes", 0)
            n = len([q for q in qa if any(e in dia_a for e in q.get("evidence", []))])
            rec["before"] += [r_before] * n
            rec["after"] += [r_after] * n
            rec["strict"] += [r_strict] * n
            lat["before"] += l_before
            lat["after"] += l_after
            print(f"{conv['sample_id']}: active {before} -> {after}, recall@10 {r_before:.3f} -> {r_after:.3f} "
                  f"(strict {r_strict:.3f}), job {job_s:.1f}s", flush=True)
    mean = statistics.fmean
    b, a = totals["before"], totals["after"]
    lines = [
        "# Consolidation + forgetting on LoCoMo",
        "",
        f"Command: `python benchmarks/consolidation_bench.py --threshold {args.threshold} "
        f"--conversations {args.conversations}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; dense search (fast mode), "
        "MiniLM-L6, local Postgres, in-process job runner.",
        "",
        f"Forgetting policy of the consolidated cubes: threshold {args.threshold}, half-life "
        f"{args.half_life_days:g} days, min_age_hours 0 (all of LoCoMo was just written).",
        "",
        "| | before | after | change |",
        "| --- | ---: | ---: | ---: |",
        f"| active memories | {b} | {a} | {100 * (a - b) / b:+.1f}% |",
        f"| dense index size (MiB) | {b * DIM_BYTES / 2**20:.2f} | {a * DIM_BYTES / 2**20:.2f} | "
        f"{100 * (a - b) / b:+.1f}% |",
        f"| recall@10 (evidence via merged_into / superseded_by / derived_from) | {mean(rec['before']):.3f} | "
        f"{mean(rec['after']):.3f} | {100 * (mean(rec['after']) - mean(rec['before'])):+.1f} pts |",
        f"| recall@10 strict (no derived_from mapping) | {mean(rec['before']):.3f} | {mean(rec['strict']):.3f} | "
        f"{100 * (mean(rec['strict']) - mean(rec['before'])):+.1f} pts |",
        f"| search p50 / p95 (ms, over HTTP) | {pct(lat['before'], 50):.1f} / {pct(lat['before'], 95):.1f} | "
        f"{pct(lat['after'], 50):.1f} / {pct(lat['after'], 95):.1f} | |",
        "",
        f"- Turns: {totals['turns']}; write admission at ingest: {totals['admitted']} admitted, "
        f"{totals['merged']} merged, {totals['rejected']} rejected (per cube).",
        f"- Job: {totals['merged_job']} merged, {totals['superseded']} superseded, {totals['summaries']} session "
        f"summaries written, {totals['forgotten']} forgotten (archived), {totals['tier_changes']} tier moves.",
        f"- Worker throughput: {b / totals['job_s']:.0f} memories/s (active memories processed per second of job "
        f"wall time, {totals['job_s']:.1f} s in all); ingest {2 * totals['admitted'] / totals['ingest_s']:.0f} "
        "memories/s through the API.",
        f"- Questions: {len(rec['before'])} (categories 1-4 with evidence).",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
