"""The retrieval module's tiers (see ``tiers.SPECS``): ranked (vec_id, score) pairs across the cubes.

Low is windowed BM25 alone: the best single channel that needs no query embedding, so its cost is a lexical
lookup. Mid fuses dense, windowed BM25 and SPLADE over plain and windowed text, without graph expansion, time or
per-type slots. High is fine mode as it is. What each costs and finds on LoCoMo is in docs/benchmarks.md, from the
command that measured it (figures do not live in code).

Each run is a ``retrieval.tier`` span naming the tier, around the channel spans of the fine retriever.
"""

from __future__ import annotations

import uuid

import numpy as np
from sqlalchemy.orm import Session

from app.retrieval.fine import FineRetriever, Hits
from app.vector.fine import FineStore

MID_CHANNELS = {"dense", "bm25_window", "splade", "splade_window"}


def needs_embedding(tier: str) -> bool:
    return tier != "low"


class Retrieval:
    def __init__(self, fine: FineStore, retriever: FineRetriever) -> None:
        self.fine = fine
        self.retriever = retriever

    def run(self, s: Session, tier: str, cube_ids: list[uuid.UUID], query: str, qvec: np.ndarray | None,
            top_k: int, allowed: dict[uuid.UUID, np.ndarray] | None) -> list[tuple[int, float]]:
        with self.retriever.tracer.start_as_current_span("retrieval.tier",
                                                         attributes={"memcubed.retrieval.tier": tier}):
            return self._run(s, tier, cube_ids, query, qvec, top_k, allowed)

    def _run(self, s: Session, tier: str, cube_ids: list[uuid.UUID], query: str, qvec: np.ndarray | None,
             top_k: int, allowed: dict[uuid.UUID, np.ndarray] | None) -> list[tuple[int, float]]:
        if tier == "low":
            return self._lexical(cube_ids, query, top_k, allowed)
        assert qvec is not None, "mid and high retrieval need the query embedding"
        channels = MID_CHANNELS if tier == "mid" else None
        ranked = self.retriever.retrieve(s, cube_ids, query, qvec, top_k, allowed, channels, graph=tier == "high")
        return [(vec_id, c.total) for vec_id, c in ranked]

    def _lexical(self, cube_ids: list[uuid.UUID], query: str, top_k: int,
                 allowed: dict[uuid.UUID, np.ndarray] | None) -> list[tuple[int, float]]:
        hits: Hits = []
        for cube_id in cube_ids:
            allow = None if allowed is None else set(allowed[cube_id].tolist())
            hits.extend(self.retriever.channel("bm25_window", self.fine.cube(cube_id).lexical.search, query,
                                               "window", top_k, allow))
        hits.sort(key=lambda h: (-h[0], h[1]))
        return [(vec_id, float(score)) for score, vec_id in hits[:top_k]]
