"""Search: embed the query, search each authorised cube's indexes, read the hits from Postgres."""

from __future__ import annotations

import logging
import time
import uuid

import numpy as np
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.errors import NotFound
from app.memory.filters import memory_filter
from app.memory.ranking import search_hits
from app.models.base import utcnow
from app.principal import Principal
from app.repositories import cubes
from app.repositories import memories as repo
from app.retrieval.fine import Candidate, FineRetriever
from app.schemas.memories import SearchRequest, SearchResponse
from app.vector.embedder import Embedder
from app.vector.index import VectorStore

log = logging.getLogger(__name__)


class SearchService:
    def __init__(self, sessions: sessionmaker[Session], embedder: Embedder, vectors: VectorStore,
                 retriever: FineRetriever) -> None:
        self.sessions = sessions
        self.embedder = embedder
        self.vectors = vectors
        self.retriever = retriever

    def search(self, principal: Principal, req: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        tenant_id = principal.require_tenant()
        cube_ids = list(dict.fromkeys(req.cube_ids))
        for cube_id in cube_ids:
            principal.require_cube(cube_id, "read")
        flt = memory_filter(req.filters, status=None)  # only active memories are searchable anyway
        with self.sessions() as s:
            live = cubes.live_cube_ids(s, tenant_id, cube_ids)
            for cube_id in cube_ids:
                if cube_id not in live:
                    raise NotFound("cube", cube_id)
            # With filters, Postgres says which vectors qualify and every channel searches only those: exact,
            # no over-fetching that could come back short.
            allowed = (
                None if flt.is_empty()
                else {c: np.asarray(repo.filtered_vec_ids(s, c, flt), dtype=np.int64) for c in cube_ids}
            )
            query = self.embedder.encode_one(req.query)
            if req.mode == "fine":
                channels = {str(c) for c in req.channels} if req.channels else None
                top = self.retriever.retrieve(s, cube_ids, req.query, query, req.top_k, allowed, channels, req.graph)
            else:
                top = self._dense(cube_ids, query, req.top_k, allowed)
            rows = repo.active_by_vec_ids(s, [vec_id for vec_id, _ in top])
            results = search_hits(s, [(rows[v], round(c.total, 6), c.explain() if req.explain else None)
                                      for v, c in top if v in rows], req.include_superseded,
                                  req.query, self.embedder.encode)
        return SearchResponse(results=results, took_ms=round((time.perf_counter() - started) * 1000, 3))

    def _dense(self, cube_ids: list[uuid.UUID], query: np.ndarray, top_k: int,
               allowed: dict[uuid.UUID, np.ndarray] | None) -> list[tuple[int, Candidate]]:
        scored: list[tuple[float, int]] = []
        for cube_id in cube_ids:
            index = self.vectors.peek(cube_id)
            if index is None:
                continue
            scores, ids = index.search(query, top_k, None if allowed is None else allowed[cube_id])
            scored.extend(zip(scores.tolist(), ids.tolist()))
        scored.sort(key=lambda h: -h[0])
        return [
            (vec_id, Candidate(ranks={"dense": rank}, scores={"dense": score}, fused=score))
            for rank, (score, vec_id) in enumerate(scored[:top_k], start=1)
        ]

    def record_access(self, memory_ids: list[uuid.UUID]) -> None:
        """Count retrievals after the response is sent, so searching never waits on this write. A failure
        is logged, never raised: it would reach uvicorn and drop the client's keep-alive connection."""
        try:
            with self.sessions.begin() as s:
                repo.touch(s, memory_ids, utcnow())
        except SQLAlchemyError:
            log.exception("could not record access to %d memories", len(memory_ids))
