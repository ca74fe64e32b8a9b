"""Semantic result cache: query → response per (tenant, cubes, route, budget, ...), dropped on any write.

Lookup is an exact hit on the normalised query first, then a semantic hit (cosine of the query embeddings
at or above a threshold) when the request has a query embedding anyway: Low search computes none, and
embedding only to look up the cache would cost more than Low itself.

Invalidation is by generation: every cube has a counter that each write bumps (``DerivedIndexes`` calls
``invalidate``), and an entry is served only while the counters of its cubes are the ones it was stored
under. With MEMCUBED_REDIS_URL the counters live in Redis, so a write in any process (API or worker)
invalidates every process's entries; entries themselves stay in this process's LRU (the hit path is one
Redis MGET). Without Redis the counters are in-process.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def normalise(query: str) -> str:
    """Case, inner whitespace and trailing punctuation do not change the question."""
    # rstrip, not a ``[\s?.!]+$`` pattern: that one retries a long run of spaces from each of its positions.
    return " ".join(query.lower().split()).rstrip(" ?.!")


@dataclass
class Entry:
    scope: str
    cube_ids: tuple[uuid.UUID, ...]
    generations: tuple[int, ...] | None
    vec: np.ndarray | None
    value: Any


class Generations:
    """Per-cube write counters, in-process or in Redis."""

    def __init__(self, redis_url: str | None, prefix: str) -> None:
        self._local: dict[uuid.UUID, int] = {}
        self._lock = threading.Lock()
        self.prefix = prefix
        self.redis: Any = None
        if redis_url:
            import redis

            self.redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)

    def _key(self, cube_id: uuid.UUID) -> str:
        return f"{self.prefix}:cachegen:{cube_id}"

    def get(self, cube_ids: Sequence[uuid.UUID]) -> tuple[int, ...] | None:
        """The cubes' counters; None when Redis cannot be read: then nothing is served or stored (a cache
        must never be the reason a request fails, nor serve what it cannot prove fresh)."""
        if self.redis is not None:
            try:
                return tuple(int(v or 0) for v in self.redis.mget([self._key(c) for c in cube_ids]))
            except Exception:
                log.exception("could not read cache generations from Redis; not caching this request")
                return None
        with self._lock:
            return tuple(self._local.get(c, 0) for c in cube_ids)

    def bump(self, cube_id: uuid.UUID) -> None:
        if self.redis is not None:
            self.redis.incr(self._key(cube_id))
            return
        with self._lock:
            self._local[cube_id] = self._local.get(cube_id, 0) + 1


class ResultCache:
    def __init__(self, redis_url: str | None, prefix: str, capacity: int, similarity: float) -> None:
        self.generations = Generations(redis_url, prefix)
        self.capacity = capacity
        self.similarity = similarity
        self._entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        return "redis" if self.generations.redis is not None else "memory"

    def invalidate(self, cube_id: uuid.UUID) -> None:
        """A write to ``cube_id``: its entries are stale everywhere. A failure to reach Redis is logged, not
        raised: the write it follows has committed, and must not look failed to its caller."""
        try:
            self.generations.bump(cube_id)
        except Exception:
            log.exception("could not bump the cache generation of cube %s; clearing this process's cache", cube_id)
        with self._lock:
            for key in [k for k, e in self._entries.items() if cube_id in e.cube_ids]:
                del self._entries[key]

    def holds(self, scope: str) -> bool:
        with self._lock:
            return any(e.scope == scope for e in self._entries.values())

    def get_exact(self, scope: str, cube_ids: tuple[uuid.UUID, ...], query: str) -> Any | None:
        with self._lock:
            entry = self._entries.get((scope, normalise(query)))
        if entry is None or entry.generations != self.generations.get(cube_ids):  # None (unreadable) never equals
            return None
        with self._lock:
            self._entries.move_to_end((scope, normalise(query)), last=True)
        return entry.value

    def get_semantic(self, scope: str, cube_ids: tuple[uuid.UUID, ...], vec: np.ndarray) -> Any | None:
        with self._lock:
            keyed = [(k, e) for k, e in self._entries.items() if e.scope == scope and e.vec is not None]
        if not keyed:
            return None
        sims = np.stack([e.vec for _, e in keyed if e.vec is not None]) @ vec
        best = int(np.argmax(sims))
        if float(sims[best]) < self.similarity:
            return None
        key, entry = keyed[best]
        if entry.generations != self.generations.get(cube_ids):
            return None
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key, last=True)
        return entry.value

    def put(self, scope: str, cube_ids: tuple[uuid.UUID, ...], generations: tuple[int, ...] | None, query: str,
            vec: np.ndarray | None, value: Any) -> None:
        """Store under the generations read *before* the work, so a write during it leaves the entry stale."""
        if generations is None or self.capacity == 0:
            return
        with self._lock:
            self._entries[(scope, normalise(query))] = Entry(scope, cube_ids, generations, vec, value)
            self._entries.move_to_end((scope, normalise(query)), last=True)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
