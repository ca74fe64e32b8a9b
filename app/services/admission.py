"""Write admission: each item of a write is admitted, merged into a memory it duplicates, or rejected.

- rejected: fewer meaningful characters than ``admission_min_chars`` (letters and digits outside filler words
  such as "ok", "lol", "haha"). Nothing is stored for it; the response says why.
- merged: an exact duplicate (same content hash as an active memory of the cube, or an earlier item of the
  same write) or a near duplicate (cosine similarity ≥ ``admission_similarity`` to an active memory of the
  cube or an earlier item). The item IS stored, as an archived memory with ``merged_into`` set, so its own
  event time, session and metadata are kept and ``restore`` can bring it back; it is not indexed, so the
  cube's active set and search results do not grow with duplicates.
- admitted: stored active and indexed, as before.

One FAISS search per write (all items at once) plus one matrix product among the items: the write stays fast.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

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
        within = vecs @ vecs.T if len(items) > 1 else np.zeros((1, 1), dtype=np.float32)
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
            if best is not None and best[1] >= threshold and best[2] == numbers(item.content):
                out.append(Decision(Admission(status="merged", merged_into=best[0], similarity=round(best[1], 4),
                                              reason="near duplicate of an active memory")))
                continue
            twin = self._earlier_twin(i, items, within, out, threshold)
            if twin is not None:
                out.append(Decision(Admission(status="merged", similarity=round(float(within[i, twin]), 4),
                                              reason=f"near duplicate of item {twin} of this write"), twin))
                continue
            first_of_hash[(item.content_hash, item.scope)] = i
            out.append(Decision(Admission(status="admitted")))
        return out

    @staticmethod
    def _earlier_twin(i: int, items: Sequence[Candidate], within: np.ndarray, decided: list[Decision],
                      threshold: float) -> int | None:
        for j in range(i):
            if (decided[j].admission.status == "admitted" and items[j].scope == items[i].scope
                    and within[i, j] >= threshold and numbers(items[j].content) == numbers(items[i].content)):
                return j
        return None

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
