"""The modules and their tiers: what each tier does, which BudgetMem axis it spends on, and a meter that
every tier reports its measured cost into.

BudgetMem's axes: *implementation* (a cheaper or costlier algorithm for the same job), *reasoning* (an LLM
or a larger model thinks about it), *capacity* (more material: neighbours, summaries, graph).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TierSpec:
    module: str
    tier: str
    axis: str  # implementation | reasoning | capacity
    llm_calls: int  # LLM calls the tier makes at most (when an LLM is configured)
    needs_llm: bool  # refused (422) without a configured LLM
    does: str


SPECS: dict[str, dict[str, TierSpec]] = {
    "retrieval": {
        "low": TierSpec("retrieval", "low", "implementation", 0, False,
                        "one channel: windowed BM25, no query embedding (the best single channel that needs none)"),
        "mid": TierSpec("retrieval", "mid", "implementation", 0, False,
                        "dense + windowed BM25 + SPLADE (plain, windowed) by RRF, no graph"),
        "high": TierSpec("retrieval", "high", "implementation", 0, False,
                         "fine mode: every channel, windowed units, time, graph expansion"),
    },
    "context": {
        "low": TierSpec("context", "low", "capacity", 0, False, "top snippets cut to the token budget"),
        "mid": TierSpec("context", "mid", "capacity", 0, False, "snippets with event dates and neighbouring turns"),
        "high": TierSpec("context", "high", "capacity", 1, False,
                         "plus session summaries (LLM-written when configured) and the graph neighbourhood"),
    },
    "extraction": {
        "low": TierSpec("extraction", "low", "implementation", 0, False, "raw turns"),
        "mid": TierSpec("extraction", "mid", "implementation", 0, False, "rule-based facts and entities"),
        "high": TierSpec("extraction", "high", "reasoning", 1, True, "LLM extraction of durable facts"),
    },
    "answer": {
        "low": TierSpec("answer", "low", "reasoning", 0, False, "the local SmolLM2 model"),
        "mid": TierSpec("answer", "mid", "reasoning", 1, True, "the configured small LLM"),
        "high": TierSpec("answer", "high", "reasoning", 1, True, "the configured large LLM"),
    },
}


@dataclass
class Meter:
    """Measured cost of one request: ms per module, tokens and LLM calls."""

    ms: dict[str, float] = field(default_factory=dict)
    tokens: int = 0
    llm_calls: int = 0

    @contextmanager
    def timed(self, module: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.ms[module] = round(self.ms.get(module, 0.0) + (time.perf_counter() - started) * 1000, 3)

    def report(self, total_ms: float) -> dict[str, float]:
        return {**self.ms, "total": round(total_ms, 3)}
