"""Ranking a small set of memories with no index: a full context is ordered this way, so it never waits for the
fine indexes to catch up with the latest write."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.graph.extract import keywords
from app.models import Memory
from app.retrieval.fine import RRF_K

QUERY_WORDS = 20  # content words of a query that count


def by_relevance(query: str, qvec: np.ndarray, mems: Sequence[Memory]) -> list[Memory]:
    """Reciprocal-rank fusion of each memory's stored-embedding cosine and how many of the query's content words
    it holds."""
    if not mems:
        return []
    vecs = np.stack([np.frombuffer(m.embedding, dtype=np.float32) for m in mems])
    cosine = vecs @ qvec
    asked = set(keywords(query, QUERY_WORDS))
    shared = [len(asked & set(keywords(m.content, 10_000))) for m in mems]
    dense = {i: r for r, i in enumerate(sorted(range(len(mems)), key=lambda i: -float(cosine[i])))}
    lexical = {i: sum(other > shared[i] for other in shared) for i in range(len(mems))}  # ties share a rank
    fused = sorted(range(len(mems)), key=lambda i: -(1 / (RRF_K + dense[i]) + 1 / (RRF_K + lexical[i])))
    return [mems[i] for i in fused]
