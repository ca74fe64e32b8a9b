"""Per-tenant routing counters of this process: requests, cache hits, tiers chosen, mean cost per tier."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from app.budget.tiers import SPECS
from app.schemas.routing import Routing, RoutingStats, TierInfo


@dataclass
class _Book:
    requests: int = 0
    hits: int = 0
    chosen: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    ms: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))


class RoutingBook:
    def __init__(self) -> None:
        self._books: dict[uuid.UUID, _Book] = defaultdict(_Book)
        self._lock = threading.Lock()

    def record(self, tenant_id: uuid.UUID, routing: Routing) -> None:
        """A cache hit counts as a request and a hit; its tiers ran earlier and are not counted again."""
        with self._lock:
            book = self._books[tenant_id]
            book.requests += 1
            if routing.cache.hit:
                book.hits += 1
                return
            for module, tier in routing.tiers.items():
                book.chosen[module][tier] += 1
                book.ms[module][tier] += routing.cost.ms.get(module, 0.0)

    def stats(self, tenant_id: uuid.UUID, backend: str, llm_configured: bool) -> RoutingStats:
        with self._lock:
            book = self._books.get(tenant_id) or _Book()
            misses = book.requests - book.hits
            return RoutingStats(
                requests=book.requests, hits=book.hits, misses=misses,
                hit_rate=round(book.hits / book.requests, 4) if book.requests else 0.0,
                tiers={m: dict(t) for m, t in book.chosen.items()},
                mean_ms={m: {t: round(ms / book.chosen[m][t], 3) for t, ms in tiers.items()}
                         for m, tiers in book.ms.items()},
                cache_backend="redis" if backend == "redis" else "memory",
                modules={m: {t: TierInfo(axis=spec.axis, does=spec.does,
                                         available=llm_configured or not spec.needs_llm)
                             for t, spec in tiers.items()} for m, tiers in SPECS.items()},
            )
