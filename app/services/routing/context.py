"""The context-assembly module's tiers: retrieved snippets → the text an answer model reads.

- low: the snippets, one line each, cut to the token budget;
- mid: each line dated with its event time, plus the turns before and after each snippet in its session;
- high: plus session summaries (consolidation's stored ones; else one written now: by the LLM when one is
  configured and the budget allows a call, extractive otherwise) and the snippets' graph neighbourhood.

Items are ranked by kind (snippets, neighbours, summaries, graph), so a tight budget drops what was added
before what was retrieved: whole items first, then the last one is truncated by tokens. The count is always
checked on the final text, so ``tokens <= limit`` holds exactly, whatever the tokenizer does at joins.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.activation.tokens import TokenCounter
from app.budget.tiers import Meter
from app.graph.traversal import GraphCache, spread
from app.llm import LLMUnavailable, fell_back
from app.memory.summaries import Summariser
from app.memory.text import indexed_text
from app.models import Memory
from app.repositories import memories as repo
from app.schemas.routing import ContextItem, ItemRole

log = logging.getLogger(__name__)

GRAPH_ITEMS = 5  # graph neighbours added at high
SUMMARY_SOURCES = 60  # most turns of a session one summary is written from


@dataclass
class Piece:
    item: ContextItem
    line: str


def line_of(m: Memory, dated: bool) -> str:
    text = " ".join(indexed_text(m.content, m.meta).split())
    if dated and m.occurred_at is not None:
        return f"- [{m.occurred_at.date().isoformat()}] {text}"
    return f"- {text}"


def piece(m: Memory, role: ItemRole, score: float | None, dated: bool) -> Piece:
    speaker = (m.meta or {}).get("speaker") or (m.meta or {}).get("said_by")
    item = ContextItem(memory_id=m.id, content=m.content, speaker=speaker if isinstance(speaker, str) else None,
                       occurred_at=m.occurred_at, session_id=m.session_id,
                       score=None if score is None else round(score, 6), role=role)
    return Piece(item, line_of(m, dated))


@dataclass
class Fitted:
    context: str
    items: list[ContextItem]
    tokens: int


def fit(pieces: Sequence[Piece], limit: int, tokens: TokenCounter) -> Fitted:
    """The longest prefix of ``pieces`` whose text is at most ``limit`` tokens, the last one cut by tokens."""
    kept: list[Piece] = []
    used = 0
    for p in pieces:
        cost = tokens.count(p.line) + (1 if kept else 0)  # the newline joining it
        if used + cost <= limit:
            kept.append(p)
            used += cost
            continue
        room = limit - used - (1 if kept else 0)
        if room > 0:
            cut = tokens.truncate(p.line, room)
            if cut.strip(" -"):
                kept.append(Piece(p.item, cut))
        break
    while True:  # the per-line sum is an estimate at joins; the final text decides
        text = "\n".join(p.line for p in kept)
        count = tokens.count(text)
        if count <= limit:
            return Fitted(text, [p.item for p in kept], count)
        last = kept.pop()
        over = count - limit
        shorter = tokens.truncate(last.line, max(0, tokens.count(last.line) - over))
        if shorter.strip(" -"):
            kept.append(Piece(last.item, shorter))


class Assembler:
    def __init__(self, tokens: TokenCounter, graphs: GraphCache, summariser: Summariser) -> None:
        self.tokens = tokens
        self.graphs = graphs
        self.summariser = summariser

    def assemble(self, s: Session, tier: str, snippets: Sequence[tuple[Memory, float]], limit: int,
                 llm_calls_left: int | None, meter: Meter) -> Fitted:
        dated = tier != "low"
        pieces = [piece(m, "snippet", score, dated) for m, score in snippets]
        if tier in ("mid", "high"):
            seen = {m.id for m, _ in snippets}
            sessions = self._sessions(s, [m for m, _ in snippets])
            pieces += self._neighbours(snippets, sessions, seen)
            # High adds only when there is room left: a summary the budget would cut is not worth an LLM call.
            if tier == "high" and fit(pieces, limit, self.tokens).tokens < limit:
                pieces += self._summaries(s, snippets, sessions, seen, llm_calls_left, meter)
                pieces += self._graph(s, snippets, seen)
        return fit(pieces, limit, self.tokens)

    @staticmethod
    def _sessions(s: Session, mems: Sequence[Memory]) -> dict[tuple[uuid.UUID, str], list[Memory]]:
        keys = dict.fromkeys((m.cube_id, m.session_id) for m in mems if m.session_id)
        return {(c, sid): repo.session_neighbours(s, c, sid) for c, sid in keys if sid is not None}

    @staticmethod
    def _neighbours(snippets: Sequence[tuple[Memory, float]], sessions: dict[tuple[uuid.UUID, str], list[Memory]],
                    seen: set[uuid.UUID]) -> list[Piece]:
        out = []
        for m, _ in snippets:
            turns = [t for t in sessions.get((m.cube_id, m.session_id or ""), []) if t.memory_type == "episodic"]
            at = next((i for i, t in enumerate(turns) if t.id == m.id), None)
            if at is None:
                continue
            for t in (turns[at - 1] if at > 0 else None, turns[at + 1] if at + 1 < len(turns) else None):
                if t is not None and t.id not in seen:
                    seen.add(t.id)
                    out.append(piece(t, "neighbour", None, True))
        return out

    def _summaries(self, s: Session, snippets: Sequence[tuple[Memory, float]],
                   sessions: dict[tuple[uuid.UUID, str], list[Memory]], seen: set[uuid.UUID],
                   llm_calls_left: int | None, meter: Meter) -> list[Piece]:
        out = []
        written_now = False
        for (_, session_id), mems in sessions.items():
            stored = [m for m in mems if (m.source or {}).get("type") == "summary"]
            if stored:
                for m in stored:
                    if m.id not in seen:
                        seen.add(m.id)
                        out.append(piece(m, "summary", None, True))
                continue
            turns = [m for m in mems if m.memory_type == "episodic"][:SUMMARY_SOURCES]
            if len(turns) < 2 or written_now:
                continue
            # One summary is written per request (the top snippet's session first): bounded cost.
            written_now = True
            text = self._write_summary(turns, llm_calls_left, meter)
            day = turns[-1].occurred_at.date().isoformat() if turns[-1].occurred_at else None
            dated = f"[{day}] " if day else ""
            line = f"- {dated}Summary of session {session_id}: {text}"
            item = ContextItem(memory_id=None, content=text, occurred_at=turns[-1].occurred_at,
                               session_id=session_id, score=None, role="summary")
            out.append(Piece(item, " ".join(line.split())))
        return out

    def _write_summary(self, turns: Sequence[Memory], llm_calls_left: int | None, meter: Meter) -> str:
        if self.summariser.configured and (llm_calls_left is None or llm_calls_left > 0):
            meter.llm_calls += 1
            try:
                return self.summariser.llm(turns)
            except (LLMUnavailable, KeyError, ValueError, TypeError) as exc:
                log.warning("LLM session summary failed (%s); using the extractive one", exc)
                fell_back(exc)
        elif not self.summariser.configured:
            fell_back("not_configured")
        return self.summariser.extractive(turns)

    def _graph(self, s: Session, snippets: Sequence[tuple[Memory, float]], seen: set[uuid.UUID]) -> list[Piece]:
        by_cube: dict[uuid.UUID, dict[int, float]] = defaultdict(dict)
        for m, _ in snippets:
            by_cube[m.cube_id][m.vec_id] = 1.0
        energy: dict[int, float] = {}
        for cube_id, seeds in by_cube.items():
            for vec_id, e in spread(self.graphs.get(cube_id), seeds).items():
                if vec_id not in seeds:
                    energy[vec_id] = max(energy.get(vec_id, 0.0), e)
        ranked = sorted(energy.items(), key=lambda kv: (-kv[1], kv[0]))
        rows = repo.active_by_vec_ids(s, [v for v, _ in ranked[: GRAPH_ITEMS * 3]])
        out = []
        for vec_id, e in ranked:
            row = rows.get(vec_id)
            if row is None or row.id in seen:
                continue
            seen.add(row.id)
            out.append(piece(row, "graph", e, True))
            if len(out) == GRAPH_ITEMS:
                break
        return out
