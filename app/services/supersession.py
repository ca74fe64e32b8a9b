"""Changed facts at write time: a memory that states a new value of an attribute ("We moved to Denver last month")
supersedes, in the same transaction, the older active memories that state another value of it ("I live in
Boston"): they are archived as a new version with ``superseded_by`` (restoring one undoes it), so search and context
only present the current value. A bare correction ("Actually it's 555-0199") replaces the speaker's last fact.

Candidates come from the cube's dense neighbours of the new memory and from the rows that name the relation
("live", "work", the attribute's words), so no older statement of the attribute is missed in a large cube; the
facts themselves come from ``app.memory.facts``. No LLM is needed; with one configured, a memory no rule reads
("I switched from coffee to tea") is shown with the speaker's close older memories to the LLM, which names the
ones it replaces (``JUDGE_PROMPT``; a failed call decides nothing).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Sequence

import numpy as np
from sqlalchemy.orm import Session

from app.config import Settings
from app.llm import LLMUnavailable, chat, fell_back
from app.memory.changes import versioned_change
from app.memory.facts import Fact, correction_in, facts_in, speaker_of
from app.memory.records import when
from app.models import Memory
from app.repositories import graph as graph_repo
from app.repositories import memories as repo
from app.services.derived import DerivedIndexes

NEIGHBOURS = 20  # dense neighbours of a new memory that are checked
CANDIDATES = 200  # rows naming the relation that are checked
TRIGGERS = {
    "residence": r"\m(?:live|lives|lived|living|moved|relocated|based|reside|resides|staying)\M",
    "work": r"\m(?:work|works|worked|working|job)\M",
    "status": r"\m(?:married|engaged|single|divorced|separated|widowed|dating|relationship)\M",
}


JUDGE_CANDIDATES = 5  # older memories one LLM call sees
JUDGE_PROMPT = ("You keep an assistant's long-term memory about people. Given one NEW statement and numbered OLD "
                "statements by the same speaker, list the OLD ones the NEW one replaces: the same attribute of the "
                "same person (where they live or work, a preference, a habit, a number, a plan) now has another "
                "value. Statements that can both be true replace nothing. Reply with JSON only: "
                "{\"replaces\": [<numbers>]}.")
log = logging.getLogger(__name__)


class Supersession:
    def __init__(self, settings: Settings, indexes: DerivedIndexes) -> None:
        self.settings = settings
        self.indexes = indexes

    def apply(self, s: Session, key_id: uuid.UUID | None, cube_id: uuid.UUID, rows: Sequence[Memory],
              vecs: np.ndarray) -> tuple[dict[uuid.UUID, list[uuid.UUID]], list[int]]:
        """Supersede what ``rows`` (this write's new active memories, in order) replace: the ids each one
        superseded, and the vector ids to drop from the indexes after the commit."""
        replaced: dict[uuid.UUID, list[uuid.UUID]] = {}
        dropped: list[int] = []
        batch = {r.id for r in rows}
        seen: set[uuid.UUID] = set()  # this write's rows before the current one
        last: dict[str, Fact] = {}  # per speaker, this write's last fact (for a bare correction)
        for row, vec in zip(rows, vecs):
            seen.add(row.id)
            if row.status != "active" or "forget_request_id" in (row.meta or {}):  # a redacted request states nothing
                continue
            speaker = speaker_of(row)
            facts = facts_in(row.content, speaker)
            value = None if facts else correction_in(row.content)
            if value is not None:
                before = last.get(speaker) or self._last_fact(s, row, speaker)
                facts = [Fact(before.subject, before.relation, value)] if before is not None else []
            # Turns of a conversation follow each other; memories written together without times do not.
            sequential = (row.source or {}).get("type") == "message" or row.occurred_at is not None

            def older(m: Memory, row: Memory = row, sequential: bool = sequential) -> bool:
                return m.id != row.id and ((m.id in seen and sequential and when(m) <= when(row))
                                           or (m.id not in batch and when(m) <= when(row)))

            if facts:
                last[speaker] = facts[-1]
                stale = [m for m in self._candidates(s, cube_id, row, vec, facts)
                         if older(m) and self._replaced(m, facts)]
            else:
                stale = self._judged(s, cube_id, row, vec, speaker, older)
            for m in repo.memories_locked(s, [m.id for m in stale]):
                if m.status != "active":
                    continue

                def mark(old: Memory, new_id: uuid.UUID = row.id) -> None:
                    old.status, old.superseded_by = "archived", new_id

                versioned_change(s, m, reason=f"superseded by {row.id}", action="memory.supersede", job_id=None,
                                 mutate=mark, details={"superseded_by": str(row.id)}, key_id=key_id)
                replaced.setdefault(row.id, []).append(m.id)
                dropped.append(m.vec_id)
            if row.id in replaced:
                graph_repo.add_edges(s, cube_id, [(row.id, old, "updates", 1.0) for old in replaced[row.id]])
        return replaced, dropped

    def _candidates(self, s: Session, cube_id: uuid.UUID, row: Memory, vec: np.ndarray,
                    facts: list[Fact]) -> list[Memory]:
        found: dict[uuid.UUID, Memory] = {}
        index = self.indexes.vectors.peek(cube_id)
        if index is not None:
            _, vec_ids = index.search(vec, NEIGHBOURS)
            for m in repo.active_by_vec_ids(s, [int(v) for v in vec_ids.tolist() if v >= 0], cube_id=cube_id).values():
                found[m.id] = m
        patterns = {TRIGGERS[f.relation] if f.relation in TRIGGERS else self._attribute(f) for f in facts}
        for m in repo.active_matching(s, cube_id, sorted(p for p in patterns if p), CANDIDATES):
            found.setdefault(m.id, m)
        return list(found.values())

    @staticmethod
    def _attribute(fact: Fact) -> str:
        """The attribute's words as a Postgres regex ("favorite color" → every word, in order)."""
        words = re.findall(r"[a-z0-9]+", fact.subject.rsplit("|", 1)[-1])
        return r"\m" + r"\M.{0,40}\m".join(words) + r"\M" if words else ""

    @staticmethod
    def _replaced(m: Memory, facts: list[Fact]) -> bool:
        """``m`` states a value of one of ``facts``' attributes, and not the same value."""
        new = {f.key: f.value for f in facts}
        theirs = facts_in(m.content, speaker_of(m))
        return any(f.key in new and new[f.key] != f.value for f in theirs) and not any(
            f.key in new and new[f.key] == f.value for f in theirs)

    def _judged(self, s: Session, cube_id: uuid.UUID, row: Memory, vec: np.ndarray, speaker: str,
                older: Callable[[Memory], bool]) -> list[Memory]:
        """The LLM's verdict on the speaker's close older memories; nothing without an LLM or when it fails."""
        st = self.settings
        index = self.indexes.vectors.peek(cube_id)
        if not st.supersede_llm:
            return []
        if not st.llm_base_url:
            fell_back("not_configured")
            return []
        if index is None:
            return []
        scores, vec_ids = index.search(vec, JUDGE_CANDIDATES * 2)
        close = {int(v): float(sc) for sc, v in zip(scores.tolist(), vec_ids.tolist())
                 if v >= 0 and sc >= st.supersede_llm_similarity}
        shown = [m for m in repo.active_by_vec_ids(s, list(close), cube_id=cube_id).values()
                 if older(m) and speaker_of(m) == speaker and "forget_request_id" not in (m.meta or {})
                 ][:JUDGE_CANDIDATES]
        if not shown:
            return []
        olds = "\n".join(f"OLD {i}: {' '.join(m.content.split())[:500]}" for i, m in enumerate(shown))
        try:
            reply, _ = chat(st, st.llm_model, [
                {"role": "system", "content": JUDGE_PROMPT},
                {"role": "user", "content": f"Statements to compare:\nNEW: {' '.join(row.content.split())[:500]}\n"
                                            f"{olds}"}], max_tokens=100, json_mode=True)
            picked = json.loads(reply).get("replaces", [])
            return [shown[i] for i in picked if isinstance(i, int) and 0 <= i < len(shown)]
        except (LLMUnavailable, ValueError, TypeError, AttributeError, KeyError) as exc:
            log.warning("supersession judge failed (%s); nothing superseded by it", type(exc).__name__)
            fell_back(exc)
            return []

    @staticmethod
    def _last_fact(s: Session, row: Memory, speaker: str) -> Fact | None:
        """The speaker's most recent fact in the session before ``row``."""
        if not row.session_id:
            return None
        for m in reversed(repo.session_neighbours(s, row.cube_id, row.session_id)):
            if m.id != row.id and speaker_of(m) == speaker and when(m) <= when(row):
                found = facts_in(m.content, speaker)
                if found:
                    return found[-1]
        return None
