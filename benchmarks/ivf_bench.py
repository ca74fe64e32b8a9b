"""Exact vs IVF dense search: per-query time at 100k vectors, and IVF's recall@10 against exact on real
MiniLM embeddings of LoCoMo turns and questions (read in place, never copied).

    python benchmarks/ivf_bench.py [--locomo PATH] [--nprobe 32] [--out benchmarks/results/ivf.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.vector.embedder import load_embedder  # noqa: E402 - after the path fix, as a script
from app.vector.index import CubeIndex, VectorStore  # noqa: E402
from benchmarks.search_bench import provenance  # noqa: E402
from evals.datasets import load_locomo  # noqa: E402


def per_query_ms(index: CubeIndex, queries: np.ndarray) -> float:
    start = time.perf_counter()
    for q in queries:
        index.search(q, 10)
    return (time.perf_counter() - start) * 1000 / len(queries)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locomo", type=Path, default=Path("../shared/data/locomo/locomo10.json"))
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--out", type=Path, help="write the figures as a results file (JSON) here")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    faiss.omp_set_num_threads(1)

    # Timing: 100k unit vectors (the scan cost does not depend on what the vectors mean).
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((100_000, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store = VectorStore(Path(tempfile.mkdtemp()), 384, "bench", ivf_min_vectors=50_000, nprobe=args.nprobe)
    cube = uuid.uuid4()
    store.add(cube, range(1, len(vecs) + 1), vecs, replace=False)
    index = store.peek(cube)
    assert index is not None
    exact_ms = per_query_ms(index, vecs[:200])
    store.flush()
    ivf_ms = per_query_ms(index, vecs[:200])
    print(f"100k vectors, 1 thread: exact {exact_ms:.2f} ms/query, IVF (nprobe {args.nprobe}) {ivf_ms:.2f} ms/query")

    # Quality: real embeddings, where IVF's clustering assumption holds.
    data = load_locomo(args.locomo)
    embedder = load_embedder("all-MiniLM-L6-v2")
    turns = embedder.encode([t.content for c in data.conversations for t in c.turns])
    questions = embedder.encode([q.question for q in data.questions])
    store = VectorStore(Path(tempfile.mkdtemp()), embedder.dim, embedder.name, ivf_min_vectors=1, nprobe=args.nprobe)
    store.add(cube, range(1, len(turns) + 1), turns, replace=False)
    index = store.peek(cube)
    assert index is not None
    exact = [set(index.search(q, 10)[1].tolist()) for q in questions]
    store.flush()
    approx = [set(index.search(q, 10)[1].tolist()) for q in questions]
    recall = float(np.mean([len(a & e) / 10 for a, e in zip(approx, exact)]))
    print(f"LoCoMo: {len(turns)} turns, {len(questions)} questions: IVF recall@10 against exact {recall:.3f}")
    if args.out:
        table = {"columns": ["dense search, 1 thread", "ms per query", "recall@10 against exact"],
                 "formats": [None, "{:.2f}", "{:.3f}"],
                 "rows": [["exact (flat), 100k random unit vectors", exact_ms, "-"],
                          [f"IVF (nprobe {args.nprobe}), same vectors", ivf_ms, "-"],
                          [f"IVF (nprobe {args.nprobe}), MiniLM: {len(turns):,} LoCoMo turns, "
                           f"{len(questions):,} questions", "-", recall]]}
        report = {**provenance(" ".join(["python benchmarks/ivf_bench.py", *argv])), "tables": {"ivf": table}}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
