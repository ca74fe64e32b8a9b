"""Write admission: each item of a write is admitted, merged into a memory it duplicates, or rejected.

- rejected: fewer meaningful characters than ``admission_min_chars`` (letters and digits outside filler words
  such as "ok", "lol", "haha"). Nothing is stored for it; the response says why.
- merged: an exact duplicate (same content hash as an active memory of the cube, or an earlier item of the
  same write) or a near duplicate (cosine similarity ≥ ``admission_similarity`` to an active memory of the
  cube or an earlier item). The item IS stored, as an archived memory with ``merged_into`` set, so its own
  event time, session and metadata are kept and ``restore`` can bring it back; it is not indexed, so the
  cube's active set and search results do not grow with duplicates.
- admitted: stored active and indexed, as before.

One FAISS search per write against the cube (all items at once); among the items themselves, a search in chunks
of ``CHUNK`` items (``WriteTwins``), so a write of N items (a merge of a 100k-memory cube is one) needs memory
O(N·k + CHUNK²), never an N x N similarity matrix.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
from sqlalchemy.orm import Session

from app.config import Settings
from app.repositories import memories as memories_repo
from app.schemas.jobs import Admission
from app.textscan import head
from app.vector.index import VectorStore

FILLER = frozenset({
    "ok", "okay", "okey", "k", "kk", "lol", "lmao", "lmfao", "rofl", "haha", "hahaha", "hahahaha", "hehe", "heh",
    "hmm", "hmmm", "hm", "um", "umm", "uh", "uhh", "mhm", "mm", "ah", "oh", "ooh", "aw", "aww", "wow", "xd",
})
WORD = re.compile(r"[^\W_]+", re.UNICODE)
NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
CHUNK = 1024  # items of one write compared as one block (a CHUNK x CHUNK matrix)
NEIGHBOURS = 16  # first k of a FAISS search among earlier admitted items; grown while the k-th still qualifies


def numbers(content: str) -> frozenset[str]:
    """Numbers in a text: two texts that differ only in a number ("at 3pm" / "at 4pm") are not duplicates."""
    return frozenset(NUMBER.findall(head(content)))


def meaningful_chars(content: str) -> int:
    """Letters and digits outside filler words."""
    return sum(len(w) for w in WORD.findall(head(content)) if w.lower() not in FILLER)


@dataclass(frozen=True)
class Candidate:
    """An item about to be written: its content hash, embedding, and the scope a duplicate must share."""

    content: str
    content_hash: str
    scope: tuple[str | None, str | None, str]  # user_id, agent_id, memory_type


@dataclass
class Decision:
    admission: Admission
    merge_with_item: int | None = None  # merged into an earlier item of the same write (its id is known later)


class AdmissionService:
    def __init__(self, settings: Settings, vectors: VectorStore) -> None:
        self.settings = settings
        self.vectors = vectors

    def decide(self, s: Session, cube_id: uuid.UUID, items: Sequence[Candidate], vecs: np.ndarray) -> list[Decision]:
        admitted = [Decision(Admission(status="admitted")) for _ in items]
        if not self.settings.admission_enabled or not items:
            return admitted
        out: list[Decision] = []
        threshold = self.settings.admission_similarity
        existing = memories_repo.active_by_hashes(s, cube_id, [it.content_hash for it in items])
        near = self._nearest(s, cube_id, items, vecs)
        twins = WriteTwins(vecs, [it.scope for it in items], [numbers(it.content) for it in items], threshold)
        first_of_hash: dict[tuple[str, tuple[str | None, str | None, str]], int] = {}
        for i, item in enumerate(items):
            if meaningful_chars(item.content) < self.settings.admission_min_chars:
                out.append(Decision(Admission(
                    status="rejected",
                    reason=f"near-empty: fewer than {self.settings.admission_min_chars} meaningful characters "
                           "(filler words such as 'ok' and 'lol' do not count)")))
                continue
            dup = existing.get(item.content_hash)
            if dup is not None and (dup.user_id, dup.agent_id, dup.memory_type) == item.scope:
                out.append(Decision(Admission(status="merged", merged_into=dup.id, similarity=1.0,
                                              reason="exact duplicate of an active memory")))
                continue
            earlier = first_of_hash.get((item.content_hash, item.scope))
            if earlier is not None:
                out.append(Decision(Admission(status="merged", similarity=1.0,
                                              reason=f"exact duplicate of item {earlier} of this write"), earlier))
                continue
            best = near.get(i)
            if best is not None and best[1] >= threshold and best[2] == twins.nums[i]:
                out.append(Decision(Admission(status="merged", merged_into=best[0], similarity=round(best[1], 4),
                                              reason="near duplicate of an active memory")))
                continue
            twin = twins.earliest(i)
            if twin is not None:
                out.append(Decision(Admission(status="merged", similarity=round(twin[1], 4),
                                              reason=f"near duplicate of item {twin[0]} of this write"), twin[0]))
                continue
            first_of_hash[(item.content_hash, item.scope)] = i
            twins.admit(i)
            out.append(Decision(Admission(status="admitted")))
        return out

    def _nearest(self, s: Session, cube_id: uuid.UUID, items: Sequence[Candidate],
                 vecs: np.ndarray) -> dict[int, tuple[uuid.UUID, float, frozenset[str]]]:
        """The most similar active memory (same scope) for each item, from one batched FAISS search."""
        cube = self.vectors.peek(cube_id)
        if cube is None:
            return {}
        k = 4
        with cube.lock:
            if cube.index.ntotal == 0:
                return {}
            scores, ids = cube.index.search(np.ascontiguousarray(vecs, dtype=np.float32), min(k, cube.index.ntotal))
        wanted = {int(v) for row, srow in zip(ids, scores) for v, sc in zip(row, srow)
                  if v >= 0 and sc >= self.settings.admission_similarity}
        if not wanted:
            return {}
        rows = memories_repo.active_by_vec_ids(s, sorted(wanted), cube_id=cube_id)
        out: dict[int, tuple[uuid.UUID, float, frozenset[str]]] = {}
        for i, (row, srow) in enumerate(zip(ids, scores)):
            for v, sc in zip(row, srow):
                m = rows.get(int(v))
                if m is not None and (m.user_id, m.agent_id, m.memory_type) == items[i].scope:
                    out[i] = (m.id, float(sc), numbers(m.content))
                    break
        return out


@dataclass
class WriteTwins:
    """Near duplicates among the items of one write: for item i, the earliest admitted item j < i of the same
    scope and numbers with cosine ≥ ``threshold``. Items are asked about in order (``earliest``, then ``admit``
    when i is admitted). Admitted items of earlier chunks live in a FAISS inner-product index searched once per
    chunk; the items of the current chunk are compared by one CHUNK x CHUNK product."""

    vecs: np.ndarray
    scopes: Sequence[tuple[str | None, str | None, str]]
    nums: Sequence[frozenset[str]]
    threshold: float
    _index: Any = None
    _positions: list[int] = field(default_factory=list)  # index position -> item
    _start: int = 0
    _before: list[list[tuple[int, float]]] = field(default_factory=list)
    _within: np.ndarray | None = None
    _pending: list[int] = field(default_factory=list)  # admitted items of the current chunk, in order

    def __post_init__(self) -> None:
        self.vecs = np.ascontiguousarray(self.vecs, dtype=np.float32)
        self._index = faiss.IndexFlatIP(self.vecs.shape[1])

    def earliest(self, i: int) -> tuple[int, float] | None:
        if self._within is None or not self._start <= i < self._start + CHUNK:
            self._next_chunk(i - i % CHUNK)
        assert self._within is not None
        # Earlier chunks' admitted items all come before this chunk's: their smallest passing item wins.
        for j, sim in sorted(self._before[i - self._start]):
            if self._same(i, j):
                return j, sim
        for j in self._pending:
            sim = float(self._within[i - self._start, j - self._start])
            if sim >= self.threshold and self._same(i, j):
                return j, sim
        return None

    def admit(self, i: int) -> None:
        self._pending.append(i)

    def _same(self, i: int, j: int) -> bool:
        return self.scopes[i] == self.scopes[j] and self.nums[i] == self.nums[j]

    def _next_chunk(self, start: int) -> None:
        if self._pending:
            self._index.add(self.vecs[self._pending])
            self._positions += self._pending
            self._pending = []
        block = self.vecs[start:start + CHUNK]
        self._start, self._within = start, block @ block.T
        self._before = self._above(block)

    def _above(self, queries: np.ndarray) -> list[list[tuple[int, float]]]:
        """Every indexed item with similarity ≥ threshold, per query: top-k searches, k grown (for the queries
        that need it) while the k-th neighbour still qualifies, so nothing is missed and k stays small."""
        out: list[list[tuple[int, float]]] = [[] for _ in range(len(queries))]
        total, k = int(self._index.ntotal), NEIGHBOURS
        todo = np.arange(len(queries))
        while total and len(todo):
            k = min(k, total)
            scores, found = self._index.search(queries[todo], k)
            again = []
            for row, q in enumerate(todo):
                if k < total and scores[row, -1] >= self.threshold:
                    again.append(q)
                    continue
                out[q] = [(self._positions[p], float(sc)) for p, sc in zip(found[row], scores[row])
                          if p >= 0 and sc >= self.threshold]
            todo, k = np.asarray(again, dtype=np.int64), k * 4
        return out
