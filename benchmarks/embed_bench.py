"""Query-embedding latency and batch throughput of each embedder runtime, side by side in one run.

Measured in-process: ``before`` is the path the service used until now (sentence-transformers' ``encode`` on the
packaged MiniLM), then each of ``MEMCUBED_EMBEDDER_RUNTIME``'s values at 1 and 2 threads. Single-query rounds
interleave the runtimes, so a change in the machine's load hits all of them alike; each figure carries the load
average, and the single-thread rows also the thread's CPU time per query (what the query costs, load or not).

    python benchmarks/embed_bench.py            # → benchmarks/results/embed_bench.json

Queries are LoCoMo questions when ``/work/shared/data/locomo/locomo10.json`` (or ``--locomo``) exists, else the
fixed sentences of tests/fixtures/embedder_sentences.txt; batches are LoCoMo turns (or those sentences, repeated).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.vector.embedder import RUNTIMES, Embedder, _packaged_model_path, set_compute_threads  # noqa: E402
from benchmarks.search_bench import machine, provenance  # noqa: E402 - after the path fix, as a script

MODEL = "all-MiniLM-L6-v2"
FIXED = ROOT / "tests" / "fixtures" / "embedder_sentences.txt"


def texts(locomo: Path) -> tuple[list[str], list[str], str]:
    """(queries, turns, source)."""
    if locomo.exists():
        samples = json.loads(locomo.read_text())
        turns = [f"{t['speaker']}: {t['text']}" for s in samples for k, v in s["conversation"].items()
                 if k.startswith("session_") and isinstance(v, list) for t in v]
        questions = [str(q["question"]) for s in samples for q in s["qa"]]
        return questions, turns, str(locomo)
    fixed = [ln for ln in FIXED.read_text().splitlines() if ln and not ln.startswith("#")]
    return fixed, fixed * 16, str(FIXED.relative_to(ROOT))


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def tables(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The table docs/benchmarks.md renders (benchmarks/render.py)."""
    return {"runtimes": {
        "columns": ["runtime", "single query p50 ms", "p95 ms", "CPU p50 ms (1 thread)", "batch 64: sentences/s",
                    "sentences per CPU-second", "least cosine to before"],
        "formats": [None, "{:.2f}", "{:.2f}", "{:.2f}", "{:.1f}", "{:.1f}", "{:.5f}"],
        "rows": [[r["runtime"], r["single_query_p50_ms"], r["single_query_p95_ms"],
                  r["single_query_cpu_p50_ms"] if r["single_query_cpu_p50_ms"] is not None else "",
                  r["batch64_sentences_per_s"],
                  r["batch64_sentences_per_cpu_s"] if r["batch64_sentences_per_cpu_s"] is not None else "",
                  r["min_cosine_to_before"]] for r in rows]}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--queries", type=int, default=200, help="timed single queries per runtime")
    p.add_argument("--batch-texts", type=int, default=256, help="texts embedded in batches of 64 per runtime")
    p.add_argument("--locomo", type=Path, default=Path("/work/shared/data/locomo/locomo10.json"))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "embed_bench.json")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)

    queries, turns, source = texts(args.locomo)
    queries = queries[: args.queries]
    set_compute_threads(1)
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(_packaged_model_path(MODEL)), device="cpu")
    embedders: dict[str, Callable[[list[str]], np.ndarray]] = {
        "before (sentence-transformers)": lambda ts: st.encode(ts, batch_size=64, normalize_embeddings=True,
                                                               show_progress_bar=False)}
    load_s: dict[str, float] = {}
    for runtime in RUNTIMES:
        for threads in (1, 2):
            if runtime == "torch" and threads == 2:
                continue  # torch's pool is process-wide: set per row below
            start = time.perf_counter()
            embedders[f"{runtime} ({threads} thread{'s' * (threads > 1)})"] = Embedder(MODEL, runtime,
                                                                                   threads=threads).encode
            load_s.setdefault(runtime, round(time.perf_counter() - start, 2))
    embedders["torch (2 threads)"] = embedders["torch (1 thread)"]

    def set_torch_threads(name: str) -> None:
        set_compute_threads(2 if name == "torch (2 threads)" else 1)

    load_before = os.getloadavg()
    wall: dict[str, list[float]] = {n: [] for n in embedders}
    cpu: dict[str, list[float]] = {n: [] for n in embedders}
    for name, encode in embedders.items():  # warm up
        set_torch_threads(name)
        for q in queries[:20]:
            encode([q])
    for q in queries:
        for name, encode in embedders.items():
            set_torch_threads(name)
            c, t = time.thread_time(), time.perf_counter()
            encode([q])
            wall[name].append((time.perf_counter() - t) * 1000)
            cpu[name].append((time.thread_time() - c) * 1000)
    load_single = os.getloadavg()

    batch_texts = (turns * (1 + args.batch_texts // len(turns)))[: args.batch_texts]
    throughput: dict[str, float] = {}
    cpu_throughput: dict[str, float] = {}
    for name, encode in embedders.items():
        set_torch_threads(name)
        c, start = time.thread_time(), time.perf_counter()
        for i in range(0, len(batch_texts), 64):
            encode(batch_texts[i : i + 64])
        throughput[name] = round(len(batch_texts) / (time.perf_counter() - start), 1)
        cpu_throughput[name] = round(len(batch_texts) / (time.thread_time() - c), 1)
    set_compute_threads(1)

    reference = embedders["before (sentence-transformers)"](queries[:100])
    rows: list[dict[str, Any]] = []
    for name in embedders:
        got = embedders[name](queries[:100])
        cos = (got * reference).sum(1)
        rows.append({"runtime": name, "single_query_p50_ms": pct(wall[name], 50),
                     "single_query_p95_ms": pct(wall[name], 95),
                     "single_query_cpu_p50_ms": pct(cpu[name], 50) if "2 threads" not in name else None,
                     "batch64_sentences_per_s": throughput[name],
                     "batch64_sentences_per_cpu_s": cpu_throughput[name] if "2 threads" not in name else None,
                     "min_cosine_to_before": round(float(cos.min()), 5)})
    report = {
        **provenance("python benchmarks/embed_bench.py" + (" " + " ".join(argv) if argv else "")),
        "machine": machine(), "model": MODEL, "texts": source, "queries": len(queries),
        "batch_texts": len(batch_texts), "first_load_s": load_s,
        "loadavg": {"before": load_before, "after_single_queries": load_single, "after_batches": os.getloadavg()},
        "results": rows, "tables": tables(rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'runtime':34} {'p50 ms':>8} {'p95 ms':>8} {'cpu p50':>8} {'batch/s':>9} {'/cpu-s':>8} {'min cos':>8}")
    for r in rows:
        one = r["single_query_cpu_p50_ms"] is not None
        print(f"{r['runtime']:34} {r['single_query_p50_ms']:8.2f} {r['single_query_p95_ms']:8.2f} "
              f"{r['single_query_cpu_p50_ms'] if one else '':>8} {r['batch64_sentences_per_s']:9.1f} "
              f"{r['batch64_sentences_per_cpu_s'] if one else '':>8} {r['min_cosine_to_before']:8.5f}")
    print(f"load average {report['loadavg']} → {args.out}")


if __name__ == "__main__":
    main()
