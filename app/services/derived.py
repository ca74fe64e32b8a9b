"""Everything derived from Postgres that a memory write must keep in step: the dense FAISS index, the
fine-retrieval indexes, the cached graph views, and the enrichment that feeds them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import numpy as np

from app.graph.traversal import GraphCache
from app.vector.fine import FineStore
from app.vector.index import VectorStore


class DerivedIndexes:
    def __init__(self, vectors: VectorStore, fine: FineStore, graphs: GraphCache,
                 schedule_enrichment: Callable[[uuid.UUID], None],
                 on_change: Callable[[uuid.UUID], None] | None = None) -> None:
        self.vectors = vectors
        self.fine = fine
        self.graphs = graphs
        self.schedule_enrichment = schedule_enrichment
        self.on_change = on_change  # the routed-result cache's invalidation: every write passes here

    def add(self, cube_id: uuid.UUID, vec_ids: Sequence[int], vecs: np.ndarray, new: bool = False) -> None:
        """Dense search sees the memories at once; fine indexes and the graph follow after enrichment.
        ``new``: the ids were never indexed (fresh rows), so nothing needs replacing."""
        self.vectors.add(cube_id, vec_ids, vecs, replace=not new)
        self.changed(cube_id)
        self.schedule_enrichment(cube_id)

    def remove(self, cube_id: uuid.UUID, vec_ids: Sequence[int]) -> None:
        self.vectors.remove(cube_id, vec_ids)
        self.fine.remove(cube_id, vec_ids)
        self.graphs.invalidate(cube_id)
        self.changed(cube_id)

    def drop(self, cube_id: uuid.UUID) -> None:
        self.vectors.drop(cube_id)
        self.fine.reset(cube_id)
        self.graphs.invalidate(cube_id)
        self.changed(cube_id)

    def changed(self, cube_id: uuid.UUID) -> None:
        """A cube's content changed (also without an index change, and when enrichment caught up)."""
        if self.on_change is not None:
            self.on_change(cube_id)
