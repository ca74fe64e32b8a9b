"""What a ranked list hands an agent first: facts about the person asked about, and current values.

Retrieval ranks by similarity, and similar facts of two people ("Tom loves sushi", "Ana loves ramen") or the old
and the new value of one fact ("I live in Boston", "we moved to Denver") are equally similar to a question. Three
rules reorder a ranked list, never drop from it:

- **Attribution.** When the query names someone, a memory about someone or something else (spoken by another
  named speaker, or naming others but not them) moves ``SHIFT`` places down; one spoken by them or naming them
  stays. A memory that names nothing is left where it is.
- **Changed values.** A statement worded as a change comes before the same speaker's earlier statement most like
  it (``newer_first``; not for questions about the past).
- **Currency.** A memory that superseded another comes before every memory that repeats a value it replaced
  (the old memory's names and numbers that the new one lacks: "Boston winters are brutal" after "we moved to
  Denver"), unless that memory also states the new value.

Speakers that are roles ("user", "assistant") name no one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.graph.extract import entities
from app.memory.records import memory_out, when
from app.models import Memory
from app.repositories import memories as repo
from app.schemas.memories import SearchHit
from app.textscan import head

Encode = Callable[[list[str]], np.ndarray]  # texts -> unit vectors (the service's embedder)
SHIFT = 3  # places a memory about someone else moves down; a rule, not fitted (LoCoMo recall in docs)
ROLES = frozenset({"", "user", "assistant", "system", "ai", "human", "bot", "me"})
_NUMBER = re.compile(r"\d[\d,.:/-]*\d|\d")
WINDOW = 20  # the first memories of a list that are checked for changed values (bounds the embedding done now)
# Least cosine between a statement worded as a change and the earlier one it may replace (contents alone), which
# keeps unrelated statements of one speaker apart. Chosen by two folds of the hygiene suite's changed items
# (odd/even ids; the floor keeping the most right pairs net of wrong ones, the largest on ties): 0.1 and 0.2. The
# higher is kept: "I moved to Boston in 2020" and "I went to the LGBTQ support group" are 0.10 apart.
PAIR_FLOOR = 0.2
# A question about the past: then the earlier statement is what it asks for, and no change moves ahead of it.
PAST = re.compile(r"\b(?:did|was|were|had|used to|before|previously|ago|first|originally|last (?:year|month|week)|"
                  r"in (?:19|20)\d\d)\b", re.IGNORECASE)
# Words that say a statement replaces an earlier one ("I go to Iron Yard now", "we switched to flat whites").
CHANGE = re.compile(r"\b(?:now|any ?more|no longer|switch(?:ed|ing)|chang(?:ed|ing)|moved|moving|instead|"
                    r"replac(?:ed|ing)|updated?|correction|actually|gave up|quit|ditched|cancell?ed|rebooked|"
                    r"rescheduled|postponed|down to|up to|these days|nowadays|became|converted|transferred|swapped|"
                    r"new)\b", re.IGNORECASE)


def speaker(m: Memory) -> str:
    meta = m.meta or {}
    said = meta.get("speaker") or meta.get("said_by") or ""
    return said.strip().lower() if isinstance(said, str) else ""


def _names(text: str) -> set[str]:
    return {n.lower() for n in entities(text)}


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9]+", head(text).lower())) + " "


def _mentions(words: str, name: str) -> bool:
    return f" {' '.join(re.findall(r'[a-z0-9]+', name))} " in words


def by_subject(query: str, mems: Sequence[Memory]) -> list[Memory]:
    """``mems`` (ranked) with memories about others than the query's named subjects moved ``SHIFT`` down."""
    asked = _names(query)
    if not asked or not mems:
        return list(mems)
    keys = []
    for rank, m in enumerate(mems):
        words = _words(m.content)
        who = speaker(m)
        about = who in asked or any(_mentions(words, n) for n in asked)
        other = not about and ((who not in ROLES and who not in asked) or bool(_names(m.content) - asked))
        keys.append((rank + (SHIFT if other else 0), rank))
    return [mems[rank] for _, rank in sorted(keys)]


@dataclass
class ForAgent:
    """A list reordered for the agent, what each memory superseded, and for a memory that may be out of date
    the later one that suggests so (``newer_statement``: inferred when reading, not stored)."""

    order: list[Memory]
    superseded: dict[uuid.UUID, list[Memory]]
    newer: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)


def newer_first(ranked: ForAgent, encode: Encode) -> None:
    """Each statement worded as a change, among the first ``WINDOW``, names the same speaker's earlier statement
    there most like it (at least ``PAIR_FLOOR``) as probably out of date, and moves before it: what no write-time
    rule read as a new value ("I've gone fully vegan since January" after "I'm pescatarian") still comes first.

    Similarity is of the contents alone, embedded now: the stored vectors carry the speaker's name, which makes
    any two statements of one speaker look alike."""
    out = ranked.order
    head_ = [m for m in out[:WINDOW] if speaker(m)]
    changes = [m for m in head_ if CHANGE.search(head(m.content)) is not None]
    if not changes:
        return
    vecs = dict(zip((m.id for m in head_), encode([m.content for m in head_])))
    for m in changes:
        who = speaker(m)
        earlier = [(cos, o.id) for o in head_ if o.id != m.id and speaker(o) == who and when(o) < when(m)
                   and (cos := float(vecs[o.id] @ vecs[m.id])) >= PAIR_FLOOR]
        if not earlier:
            continue
        old = max(earlier)[1]
        ranked.newer.setdefault(old, m.id)
        at, before = out.index(m), next(i for i, o in enumerate(out) if o.id == old)
        if before < at:
            out.insert(before, out.pop(at))


def _values(text: str) -> set[str]:
    return _names(text) | set(_NUMBER.findall(head(text)))


def current_first(ranked: ForAgent) -> None:
    """Each memory that superseded others (at write, or as ``newer_first`` inferred) names the memories repeating
    a value it replaced (and not its own) as out of date, and moves before the first of them."""
    out = ranked.order
    by_id = {m.id: m for m in out}
    inferred: dict[uuid.UUID, list[Memory]] = {}
    for old, new_id in ranked.newer.items():
        inferred.setdefault(new_id, []).append(by_id[old])
    words: dict[uuid.UUID, str] = {}  # each memory's words, made once and only if some memory replaced another
    for m in list(out):
        older = [*(ranked.superseded.get(m.id) or []), *inferred.get(m.id, [])]
        if not older:
            continue
        new = _values(m.content)
        stale = set().union(*(_values(o.content) for o in older)) - new
        if not stale:
            continue
        if not words:
            words = {o.id: _words(o.content) for o in out}
        echoes = [o for o in out if o.id != m.id and any(_mentions(words[o.id], v) for v in stale)
                  and not any(_mentions(words[o.id], v) for v in new)]
        for o in echoes:
            ranked.newer.setdefault(o.id, m.id)
        at = out.index(m)
        first = min((out.index(o) for o in echoes), default=at)
        if first < at:
            out.insert(first, out.pop(at))


def ranked_for_agent(s: Session, query: str, mems: Sequence[Memory], encode: Encode) -> ForAgent:
    """``mems`` (ranked) reordered for the agent: the person asked about, then current values first (a changed
    value only when the question is not about the past)."""
    ranked = ForAgent(by_subject(query, mems), repo.superseded_by(s, [m.id for m in mems]))
    if PAST.search(head(query)) is None:  # "When did she move?" asks for history, not the current value
        newer_first(ranked, encode)
    current_first(ranked)
    return ranked


def search_hits(s: Session, ranked: Sequence[tuple[Memory, float, dict[str, Any] | None]],
                include_superseded: bool, query: str, encode: Encode) -> list[SearchHit]:
    """Ranked memories as hits, reordered for the agent (``ranked_for_agent``), each naming what it superseded and
    what may have outdated it; with ``include_superseded``, the older memories follow it (same score). A hit keeps
    its retrieval score, so scores need not fall along the list."""
    by_id = {m.id: (score, explain) for m, score, explain in ranked}
    agent = ranked_for_agent(s, query, [m for m, _, _ in ranked], encode)
    hits = []
    for m in agent.order:
        score, explain = by_id[m.id]
        older = agent.superseded[m.id]
        hits.append(SearchHit(memory=memory_out(m), score=score, explain=explain, supersedes=[o.id for o in older],
                              newer_statement=agent.newer.get(m.id)))
        if include_superseded:
            hits.extend(SearchHit(memory=memory_out(o), score=score) for o in older)
    return hits
