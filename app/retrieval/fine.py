"""Fine retrieval: dense + BM25 + SPLADE (each over plain and windowed text) + time + per-type slots,
fused by weighted reciprocal rank fusion, then expanded through the memory graph.

Each channel runs in a span of its own (``retrieval.<channel>``, with its hit count) under ``retrieval.fine``,
so a trace shows where a fine search spends its time; with tracing off the tracer is OpenTelemetry's no-op.

RRF because the channels' scores live on unrelated scales (cosine, BM25, SPLADE dot products) and rank
fusion needs no calibration; how the weights were chosen: CHANNEL_WEIGHTS below.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from opentelemetry import trace
from sqlalchemy.orm import Session

from app.graph.timeexpr import extract_times
from app.graph.traversal import GraphCache, spread
from app.repositories import memories as memories_repo
from app.vector.fine import FineStore
from app.vector.index import CubeIndex, VectorStore

RRF_K = 60
# Weights from an in-sample grid search on LoCoMo turn recall@10 (its script was not kept); `memcubed-eval tune`
# (evals/tuning.py) chooses them by conversation folds. Plain BM25 is off by default, kept for ablations.
CHANNEL_WEIGHTS = {
    "dense": 1.0,
    "dense_window": 1.0,
    "bm25": 0.0,
    "bm25_window": 2.0,
    "bm25_window2": 1.0,
    "splade": 1.0,
    "splade_window": 1.0,
    "splade_window2": 1.0,
    "time": 1.0,
    "typed": 0.3,
}
DEFAULT_CHANNELS = frozenset(c for c, w in CHANNEL_WEIGHTS.items() if w > 0)
GRAPH_WEIGHT = 0.1
DEPTH = 100  # candidates taken from each channel
CHANNEL_ATTRIBUTE = "memcubed.retrieval.channel"
HITS_ATTRIBUTE = "memcubed.retrieval.hits"
Hits = list[tuple[float, int]]


@dataclass
class Candidate:
    ranks: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    fused: float = 0.0
    graph: float = 0.0

    @property
    def total(self) -> float:
        return self.fused + self.graph

    def explain(self) -> dict[str, Any]:
        return {
            "channels": {c: {"rank": r, "score": round(self.scores[c], 6)} for c, r in sorted(self.ranks.items())},
            "fused": round(self.fused, 6),
            "graph": round(self.graph, 6),
        }


def time_window(query: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The span named by a time expression in the query ("in May 2023", "last week"), if any."""
    refs = extract_times(query, now)
    if not refs:
        return None
    start = min(r.start for r in refs)
    end = max(r.end for r in refs)
    return (datetime(start.year, start.month, start.day, tzinfo=UTC),
            datetime(end.year, end.month, end.day, tzinfo=UTC))


def nearest(index: CubeIndex, query_vec: np.ndarray, depth: int, allow: np.ndarray | None) -> Hits:
    """A dense index's nearest neighbours as (score, vec_id) pairs."""
    scores, ids = index.search(query_vec, depth, allow)
    return list(zip(scores.tolist(), ids.tolist()))


class FineRetriever:
    def __init__(self, vectors: VectorStore, fine: FineStore, graphs: GraphCache,
                 tracer: trace.Tracer | None = None) -> None:
        self.vectors = vectors
        self.fine = fine
        self.graphs = graphs
        self.tracer = tracer or trace.get_tracer(__name__)

    def span(self, channel: str) -> AbstractContextManager[trace.Span]:
        """A span for one retrieval channel (or step), named after it."""
        return self.tracer.start_as_current_span(f"retrieval.{channel}", attributes={CHANNEL_ATTRIBUTE: channel})

    def channel(self, name: str, search: Callable[..., Hits], *args: object) -> Hits:
        """Run one channel's search in its span, which records how many candidates it gave."""
        with self.span(name) as span:
            hits = search(*args)
            span.set_attribute(HITS_ATTRIBUTE, len(hits))
            return hits

    def retrieve(self, s: Session, cube_ids: list[uuid.UUID], query: str, query_vec: np.ndarray, top_k: int,
                 allowed: dict[uuid.UUID, np.ndarray] | None, channels: set[str] | None = None,
                 graph: bool = True) -> list[tuple[int, Candidate]]:
        """Ranked (vec_id, candidate) pairs across the cubes; ``channels`` limits the fusion (ablations)."""
        use = channels or DEFAULT_CHANNELS
        with self.tracer.start_as_current_span("retrieval.fine", attributes={
                "memcubed.retrieval.cubes": len(cube_ids), "memcubed.retrieval.top_k": top_k,
                "memcubed.retrieval.channels": sorted(use), "memcubed.retrieval.graph": graph}):
            return self._retrieve(s, cube_ids, query, query_vec, top_k, allowed, use, graph)

    def _retrieve(self, s: Session, cube_ids: list[uuid.UUID], query: str, query_vec: np.ndarray, top_k: int,
                  allowed: dict[uuid.UUID, np.ndarray] | None, use: set[str] | frozenset[str],
                  graph: bool) -> list[tuple[int, Candidate]]:
        depth = max(DEPTH, top_k * 3)
        cands: dict[int, Candidate] = defaultdict(Candidate)
        sparse_q = None
        if use & {"splade", "splade_window", "splade_window2"}:
            with self.span("splade_query"):
                sparse_q = self.fine.encoder.encode([query])
        span = time_window(query, datetime.now(UTC))
        for cube_id in cube_ids:
            allow_arr = None if allowed is None else allowed[cube_id]
            allow_set = None if allow_arr is None else set(allow_arr.tolist())
            lists: dict[str, Hits] = {}
            index = self.vectors.peek(cube_id)
            if index is not None:
                lists["dense"] = self.channel("dense", nearest, index, query_vec, depth, allow_arr)
            cube = self.fine.cube(cube_id)
            if "dense_window" in use:
                lists["dense_window"] = self.channel("dense_window", nearest, cube.dense_window, query_vec, depth,
                                                     allow_arr)
            for channel, text_field in (("bm25", "body"), ("bm25_window", "window"), ("bm25_window2", "window2")):
                if channel in use:
                    lists[channel] = self.channel(channel, cube.lexical.search, query, text_field, depth, allow_set)
            for channel, view in (("splade", "plain"), ("splade_window", "window"), ("splade_window2", "window2")):
                if channel in use and sparse_q is not None:
                    lists[channel] = self.channel(channel, cube.splade[view].search, sparse_q, depth, allow_set)
            if "time" in use and span is not None and index is not None:
                lists["time"] = self.channel("time", self._time, s, cube_id, index, span, query_vec, depth,
                                             allow_set)
            for channel, hits in lists.items():
                if channel not in use:
                    continue
                # A channel asked for explicitly counts even where its default weight is 0 (plain BM25).
                weight = CHANNEL_WEIGHTS[channel] or 1.0
                for rank, (score, vec_id) in enumerate(hits, start=1):
                    c = cands[vec_id]
                    c.ranks[channel] = rank
                    c.scores[channel] = score
                    c.fused += weight / (RRF_K + rank)
            if "typed" in use:
                with self.span("typed"):
                    self._typed_slots(s, cands, lists.get("dense", []))
            if graph:
                with self.span("graph"):
                    self._expand(cube_id, cands, allow_set)
        ranked = sorted(cands.items(), key=lambda kv: -kv[1].total)
        return ranked[:top_k]

    def _time(self, s: Session, cube_id: uuid.UUID, index: CubeIndex, span: tuple[datetime, datetime],
              query_vec: np.ndarray, depth: int, allow: set[int] | None) -> Hits:
        """Dense hits among the memories said within the query's time span."""
        in_span = self._in_span(s, cube_id, span)
        if allow is not None:
            in_span = np.asarray([v for v in in_span.tolist() if v in allow], dtype=np.int64)
        return nearest(index, query_vec, depth, in_span)

    @staticmethod
    def _in_span(s: Session, cube_id: uuid.UUID, span: tuple[datetime, datetime]) -> np.ndarray:
        return np.asarray(memories_repo.active_in_span(s, cube_id, *span), dtype=np.int64)

    @staticmethod
    def _typed_slots(s: Session, cands: dict[int, Candidate], dense: list[tuple[float, int]]) -> None:
        """ENGRAM-style per-type retrieval: rank each memory type's dense hits on its own, so a few
        semantic facts are not crowded out by many episodic turns."""
        if not dense:
            return
        types = memories_repo.types_of(s, [v for _, v in dense])
        if len(set(types.values())) < 2:
            return
        per_type: dict[str, int] = defaultdict(int)
        for score, vec_id in dense:
            kind = types.get(vec_id)
            if kind is None:
                continue
            per_type[kind] += 1
            c = cands[vec_id]
            c.ranks["typed"] = per_type[kind]
            c.scores["typed"] = score
            c.fused += CHANNEL_WEIGHTS["typed"] / (RRF_K + per_type[kind])

    def _expand(self, cube_id: uuid.UUID, cands: dict[int, Candidate], allow: set[int] | None) -> None:
        """Spread activation from the best fused hits to their graph neighbours."""
        if GRAPH_WEIGHT <= 0:
            return
        seeds = dict(sorted(((v, c.fused) for v, c in cands.items()), key=lambda kv: -kv[1])[:10])
        if not seeds:
            return
        top = max(seeds.values())
        graph = self.graphs.get(cube_id)
        for vec_id, energy in spread(graph, {v: e / top for v, e in seeds.items()}).items():
            if allow is not None and vec_id not in allow:
                continue
            cands[vec_id].graph += GRAPH_WEIGHT * energy * top
