"""Everything derived from Postgres that a memory write must keep in step: the dense FAISS index, the
fine-retrieval indexes, the cached graph views, and the enrichment that feeds them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence

import numpy as np

from app.graph.traversal import GraphCache
from app.vector.fine import FineStore, Window
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
        self._deferred: dict[uuid.UUID, list[tuple[int, Callable[[], None]]]] = {}
        self._lock = threading.Lock()

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

    def apply_dense(self, cube_id: uuid.UUID, ids: Sequence[int], vecs: np.ndarray, gone: Sequence[int]) -> None:
        """Make this process's dense index hold what the rows now say (a change another process logged):
        ``ids`` are active with ``vecs``, ``gone`` are not searchable."""
        if gone:
            self.vectors.remove(cube_id, gone)
        if ids:
            self.vectors.add(cube_id, ids, vecs, replace=True)
        self.changed(cube_id)

    def apply_fine(self, cube_id: uuid.UUID, stale: Sequence[int], texts: Sequence[tuple[int, str]],
                   windows: Sequence[Window]) -> None:
        """The same for the fine indexes and the graph: ``stale`` are not (or not yet) enriched, ``texts`` and
        ``windows`` are the enriched ones' entries."""
        if stale and self.fine.holds(cube_id):
            self.fine.remove(cube_id, stale)
        if texts:
            self.fine.upsert(cube_id, texts, windows)
        self.graphs.invalidate(cube_id)
        self.changed(cube_id)

    def defer(self, cube_id: uuid.UUID, count: int, work: Callable[[], None]) -> None:
        """Index work that need not hold up the response (the fine indexes of imported memories that arrive
        already enriched): it runs on the enrichment thread, and until it has, the cube counts ``count``
        memories as pending enrichment. A stop before it runs is healed at the next start (``heal_fine``)."""
        with self._lock:
            self._deferred.setdefault(cube_id, []).append((count, work))
        self.schedule_enrichment(cube_id)

    def run_deferred(self, cube_id: uuid.UUID) -> None:
        """Run the cube's deferred work in order; each item stops counting as pending once it has run."""
        while True:
            with self._lock:
                queue = self._deferred.get(cube_id)
                if not queue:
                    return
                _, work = queue[0]
            try:
                work()
            finally:
                with self._lock:
                    queue.pop(0)
                    if not queue:
                        del self._deferred[cube_id]
            self.changed(cube_id)

    def deferred(self, cube_id: uuid.UUID) -> int:
        with self._lock:
            return sum(count for count, _ in self._deferred.get(cube_id, ()))

    def changed(self, cube_id: uuid.UUID) -> None:
        """A cube's content changed (also without an index change, and when enrichment caught up)."""
        if self.on_change is not None:
            self.on_change(cube_id)
