"""Forget requests: a user tells the agent "forget my address" in a message; the cube's memories about the
subject are archived (restorable by reverting the request) or, under the cube's ``purge`` forget policy,
destroyed. The request itself is kept with its subject only; the message is stored with the request sentence
replaced by ``[forget request: <kind>]`` (``address``, ``health``; no subject, since the subject may be what is
forgotten), so the conversation still shows that the user asked.

Which memories are "about" the subject: those containing every content word of it (lexical), those holding
data of its sensitive kind ("my address" → "I live at 42 Elm Street", ``app.forget_requests.kinds``), and those
whose embedding is at least ``forget_min_score`` similar to it (dense); a first-person request skips memories
that only mention someone else's ("my sister's birthday"). "Forget that number" points back: the nearest earlier
turn of its call that can be it. A diagnosis also takes the memories that repeat its name ("the Crohn's"), and
what the sentence says to keep ("keep the work one") stays. A memory that says more than the data of the kind,
or than a name, loses only that ("[forgotten]"). A request covers everything stored before it, earlier messages
of its own call included; the summaries written from what it forgets go with them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import Conflict, NotFound
from app.forget_requests.detector import (
    CLASSIFIER_PROMPT,
    Detection,
    content_words,
    detect,
    exceptions,
    might_be_request,
    parse_classifier_reply,
    points_back,
)
from app.forget_requests.kinds import (
    echoes_in,
    first_person,
    fits,
    kind_of,
    kind_owned_by_another,
    mentions,
    owned_by_another,
    redact,
    redact_name,
    values_in,
)
from app.llm import LLMUnavailable, chat, fell_back
from app.memory.access import require_cube
from app.memory.changes import versioned_change
from app.memory.text import content_hash, indexed_text
from app.models import Memory
from app.models.base import utcnow
from app.models.lifecycle import ForgetRequest
from app.principal import Principal
from app.repositories import activations as activations_repo
from app.repositories import adapters as adapters_repo
from app.repositories import audit
from app.repositories import forget_requests as repo
from app.repositories import memories as memories_repo
from app.schemas.forget_requests import ForgetRequestList, ForgetRequestOut, StaleDerived
from app.schemas.memories import MessageIn
from app.services.base import Transactor, Tx
from app.services.derived import DerivedIndexes
from app.vector.embedder import Embedder

log = logging.getLogger(__name__)

REASON = "forget request"
MARKER_KEY = "forget_request_id"  # in the metadata of a stored request message: never itself forgotten


def marker(subject: str) -> str:
    """What the stored message says in place of the request: the kind of data asked about, never the subject
    itself ("forget about Callum" must not leave "Callum" behind)."""
    kind = kind_of(subject)
    return f"[forget request: {kind.name}]" if kind is not None else "[forget request]"


def llm_verdict(settings: Settings, text: str) -> Detection | None:
    """The configured LLM's verdict on one message; raises when the call fails."""
    reply, _ = chat(settings, settings.llm_model, [
        {"role": "system", "content": CLASSIFIER_PROMPT},
        {"role": "user", "content": f"Message to classify: {text[:4000]}"},
    ])
    return parse_classifier_reply(reply, text)


def request_out(row: ForgetRequest) -> ForgetRequestOut:
    return ForgetRequestOut.model_validate(row, from_attributes=True)


@dataclass(frozen=True)
class Forgotten:
    """What applying a forget request did: the request, the memories archived or purged (summaries written from
    them included), and the derived caches and adapters that may still hold them."""

    request_id: uuid.UUID
    memory_ids: list[uuid.UUID]
    stale: StaleDerived
    policy: str


@dataclass(frozen=True)
class ForgetPlan:
    """The forget requests found among a batch of messages, decided before the write's transaction."""

    request_id: uuid.UUID
    detector: str
    found: dict[int, Detection]  # message index → what it asks to forget
    queries: np.ndarray  # one embedding per subject, in ``found`` order

    @property
    def subjects(self) -> list[str]:
        return list(dict.fromkeys(d.subject for d in self.found.values()))

    def first_requests(self) -> list[tuple[int, Detection]]:
        """Each subject once, with the index of the first message that asked for it (``subjects`` order)."""
        first: dict[str, tuple[int, Detection]] = {}
        for i in sorted(self.found):
            first.setdefault(self.found[i].subject, (i, self.found[i]))
        return list(first.values())

    def redact(self, index: int, content: str) -> str:
        """The message as stored: the request sentence replaced by its marker (the whole message if the
        sentence cannot be found verbatim, e.g. an LLM verdict on a long message)."""
        d = self.found[index]
        if d.sentence and d.sentence in content and d.sentence != content.strip():
            return content.replace(d.sentence, marker(d.subject), 1)
        return marker(d.subject)


class ForgetRequestService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], tx: Transactor, embedder: Embedder,
                 indexes: DerivedIndexes) -> None:
        self.settings = settings
        self.sessions = sessions
        self.tx = tx
        self.embedder = embedder
        self.indexes = indexes

    # -- detection ---------------------------------------------------------------------------------------------
    def classify(self, text: str) -> tuple[Detection | None, str]:
        """The LLM's verdict when one is configured (messages without any memory verb skip the call); the rules
        otherwise, or when the call fails."""
        s = self.settings
        if s.llm_base_url and s.forget_llm:
            if not might_be_request(text):
                return None, "llm"
            try:
                return llm_verdict(s, text), "llm"
            except (LLMUnavailable, KeyError, IndexError, TypeError, ValueError) as exc:
                log.warning("forget-request classifier failed (%s); using the rules", exc)
                fell_back(exc)
        elif s.forget_llm and might_be_request(text):
            fell_back("not_configured")
        return detect(text), "rules"

    def plan(self, messages: Sequence[MessageIn]) -> ForgetPlan | None:
        """The users' messages that are forget requests (an assistant saying "I'll forget it" is not one)."""
        found: dict[int, Detection] = {}
        detectors: set[str] = set()
        for i, msg in enumerate(messages):
            if msg.role.strip().lower() != "user":
                continue
            detection, detector = self.classify(msg.content)
            if detection is not None:
                found[i] = detection
                detectors.add(detector)
        if not found:
            return None
        subjects = list(dict.fromkeys(d.subject for d in found.values()))
        return ForgetPlan(request_id=uuid.uuid4(), detector="llm" if "llm" in detectors else "rules", found=found,
                          queries=self.embedder.encode(subjects))

    # -- apply, inside the write of the messages -------------------------------------------------------------------
    def apply(self, tx: Tx, principal: Principal, tenant_id: uuid.UUID, cube_id: uuid.UUID, plan: ForgetPlan,
              batch: dict[uuid.UUID, int]) -> Forgotten:
        """Archive (or purge) what the plan's subjects match, and the summaries written from it; flag the
        activation caches and adapters that may still hold it."""
        s = tx.session
        cube = require_cube(s, tenant_id, cube_id)
        redactions: dict[uuid.UUID, tuple[str, list[str]]] = {}
        matched = self._matches(s, cube_id, plan, batch, redactions)
        if cube.forget_policy == "purge":
            redactions.clear()  # purge destroys: no redacted copy, and no version holding the data, is left
        written_from = {m.id for m in memories_repo.derived_from(s, [m.id for m, _ in matched])}
        summaries = [m for m in memories_repo.memories_locked(s, list(written_from - {x.id for x, _ in matched}))
                     if m.status == "active"]
        matched += [(m, "derived from a forgotten memory") for m in summaries]
        stale = self._derived_artifacts(s, cube_id, [m for m, _ in matched])
        ids = [m.id for m, _ in matched]
        scores = {str(m.id): how for m, how in matched}
        policy = cube.forget_policy
        if policy == "purge":
            for m, _ in matched:
                audit.record(s, tenant_id=tenant_id, key_id=principal.key_id, action="memory.purge",
                             object_type="memory", object_id=m.id,
                             details={"version": m.version, "status": m.status, "content_hash": m.content_hash,
                                      "cube_id": str(cube_id), "reason": REASON,
                                      "forget_request_id": str(plan.request_id)})
                s.expunge(m)
            memories_repo.hard_delete(s, ids)
        else:
            for m, _ in matched:
                if m.id in redactions:
                    self._redact(s, m, redactions[m.id][0], principal.key_id, plan.request_id)
                    continue
                versioned_change(s, m, reason=REASON, action="memory.forget", job_id=None, key_id=principal.key_id,
                                 mutate=lambda mem: setattr(mem, "status", "archived"),
                                 details={"forget_request_id": str(plan.request_id)})
        flagged = {"activations": [str(a) for a in stale.activations], "adapters": [str(a) for a in stale.adapters],
                   "summaries": [str(m.id) for m in summaries]}
        row = repo.add(s, ForgetRequest(
            id=plan.request_id, tenant_id=tenant_id, cube_id=cube_id, subject="; ".join(plan.subjects),
            detector=plan.detector, policy=policy, status="purged" if policy == "purge" else "applied",
            memory_ids=ids, key_id=principal.key_id, created_at=utcnow(),
            details={"subjects": plan.subjects, "matched": scores, "min_score": self.settings.forget_min_score,
                     "message_indexes": sorted(plan.found), "derived": flagged,
                     "redacted": {str(m.id): m.version for m, _ in matched if m.id in redactions}},
        ))
        audit.record(s, tenant_id=tenant_id, key_id=principal.key_id, action="forget_request.apply",
                     object_type="forget_request", object_id=row.id,
                     details={"cube_id": str(cube_id), "policy": policy, "detector": plan.detector,
                              "memory_ids": [str(i) for i in ids]})
        gone = [m.vec_id for m, _ in matched if m.id not in redactions]
        if gone:
            tx.after_commit.append(lambda: self.indexes.remove(cube_id, gone))
        self._reindex(tx, cube_id, [m for m, _ in matched if m.id in redactions])
        return Forgotten(row.id, ids, stale, policy)

    def _redact(self, s: Session, m: Memory, text: str, key_id: uuid.UUID | None, request_id: uuid.UUID,
                restore: bool = False) -> None:
        """The memory keeps what it says beside the forgotten data: a new version without it (or, reverting, with
        it again), embedded again."""
        def mutate(mem: Memory) -> None:
            mem.content, mem.content_hash = text, content_hash(text)
            mem.embedding = self.embedder.encode([indexed_text(text, mem.meta)])[0].tobytes()
            mem.enriched_at = None  # its keywords, entities and sparse vector are the old text's

        versioned_change(s, m, reason=f"{REASON} reverted" if restore else REASON,
                         action="memory.restore" if restore else "memory.redact", job_id=None, key_id=key_id,
                         mutate=mutate, details={"forget_request_id": str(request_id)})

    def _reindex(self, tx: Tx, cube_id: uuid.UUID, changed: Sequence[Memory]) -> None:
        """After the commit, the dense index holds the changed texts' vectors; enrichment redoes the rest."""
        if not changed:
            return
        tx.session.flush()
        vec_ids = [m.vec_id for m in changed]
        vecs = np.stack([np.frombuffer(m.embedding, dtype=np.float32) for m in changed])
        tx.after_commit.append(lambda: self.indexes.add(cube_id, vec_ids, vecs))

    @staticmethod
    def _derived_artifacts(s: Session, cube_id: uuid.UUID, forgotten: Sequence[Memory]) -> StaleDerived:
        """Activation caches whose prefix holds a forgotten memory's text, and adapters distilled from the cube
        since the earliest forgotten memory was written: flagged, since only deleting or rebuilding them clears
        what they learned."""
        if not forgotten:
            return StaleDerived()
        texts = [" ".join(m.content.split()) for m in forgotten]
        caches = [a.id for a in activations_repo.in_cube(s, cube_id)
                  if a.status == "active" and any(t in " ".join(a.prefix_text.split()) for t in texts)]
        since = min(m.created_at for m in forgotten)
        adapters = [a.id for a in adapters_repo.in_cube(s, cube_id, include_deleted=False)
                    if a.source == "distill" and a.created_at >= since]
        return StaleDerived(activations=caches, adapters=adapters)

    def _matches(self, s: Session, cube_id: uuid.UUID, plan: ForgetPlan, batch: dict[uuid.UUID, int],
                 redactions: dict[uuid.UUID, tuple[str, list[str]]]) -> list[tuple[Memory, str]]:
        """Each matched active memory once, with how it matched ("lexical", "kind address", "dense 0.731"); those
        that only lose the data of a kind get their redacted text in ``redactions`` (unless matched otherwise too).

        A request covers what was stored before it: earlier memories and the earlier messages of its own call
        (``batch`` maps this call's memories to their message index), never the ones after it or the markers of
        requests. A first-person request ("my birthday") skips memories that only mention someone else's."""
        limit = self.settings.forget_max_memories
        keep: dict[uuid.UUID, tuple[Memory, str]] = {}
        for (at, detection), query in zip(plan.first_requests(), plan.queries):
            words = content_words(detection.subject)
            mine = first_person(detection.sentence)

            def covered(m: Memory, at: int = at) -> bool:
                return batch.get(m.id, -1) < at and MARKER_KEY not in (m.meta or {})

            kind = kind_of(detection.subject)
            found = {mid: (m, how) for mid, (m, how) in self._about(s, cube_id, detection, query, at, batch).items()
                     if covered(m) and not (mine and (owned_by_another(m.content, words) or (
                         kind is not None and kind_owned_by_another(m.content, kind))))}
            if points_back(detection) and (turn := self._pointed_at(s, detection, at, batch)) is not None:
                found.setdefault(turn.id, (turn, "the turn it points back to"))
            if kind is not None and not kind.values:  # the names its data goes by, repeated elsewhere
                for name in dict.fromkeys(e for m, how in found.values() if how.startswith("kind ")
                                          for e in echoes_in(m.content, kind)):
                    for m in memories_repo.active_containing(s, cube_id, [name], limit):
                        if covered(m):
                            found.setdefault(m.id, (m, f"repeats the name {name!r}"))
            # A memory that says more than the data of the kind (or than a name) loses the data alone.
            cuts = {mid: cut for mid, (m, how) in found.items() if (cut := (
                redact(m.content, kind) if kind is not None else
                redact_name(m.content, words) if how == "lexical" else None)) is not None}
            # What they hold may be repeated elsewhere ("Got it, 07911 123456"): that goes too.
            values = list(dict.fromkeys(v for mid, (m, _) in found.items()
                                        for v in values_in(" ".join(cuts[mid][1]) if mid in cuts else m.content)))
            for m in memories_repo.active_holding(s, cube_id, values, limit):
                if covered(m):
                    found.setdefault(m.id, (m, "holds a forgotten value"))
            # "Forget my personal email, keep the work one": what the request says to keep stays.
            if kept := exceptions(detection):
                found = {mid: hit for mid, hit in found.items()
                         if not (mentions(hit[0].content, kept, any) and not mentions(hit[0].content, words, all))}
            for mid, hit in found.items():
                if mid not in keep and mid in cuts:
                    redactions[mid] = cuts[mid]
                elif mid in keep and mid in redactions and mid not in cuts:
                    del redactions[mid]  # about the subject itself under another request: it goes whole
                keep.setdefault(mid, hit)
        # Locked only now, all at once in vec_id order, and kept only if still active.
        how_of = {mid: how for mid, (_, how) in keep.items()}
        locked = [m for m in memories_repo.memories_locked(s, list(how_of)) if m.status == "active"]
        ordered = sorted(((m, how_of[m.id]) for m in locked), key=lambda x: (x[0].created_at, x[0].id))
        return ordered[:limit]

    @staticmethod
    def _pointed_at(s: Session, detection: Detection, at: int, batch: dict[uuid.UUID, int]) -> Memory | None:
        """What "forget that number" points back to: the nearest earlier turn of the same call, not the
        assistant's, that can be it."""
        earlier = sorted(((i, mid) for mid, i in batch.items() if i < at), reverse=True)
        turns = {m.id: m for m in memories_repo.memories_by_ids(s, [mid for _, mid in earlier])}
        for _, mid in earlier:
            m = turns.get(mid)
            if (m is not None and m.status == "active" and (m.meta or {}).get("role") != "assistant"
                    and MARKER_KEY not in (m.meta or {}) and fits(m.content, detection.subject)):
                return m
        return None

    def _about(self, s: Session, cube_id: uuid.UUID, detection: Detection, query: np.ndarray, at: int,
               batch: dict[uuid.UUID, int]) -> dict[uuid.UUID, tuple[Memory, str]]:
        """Active memories about a subject: its words, its sensitive kind, its embedding."""
        limit = self.settings.forget_max_memories
        found: dict[uuid.UUID, tuple[Memory, str]] = {}
        for m in memories_repo.active_containing(s, cube_id, content_words(detection.subject), limit):
            found.setdefault(m.id, (m, "lexical"))
        kind = kind_of(detection.subject)
        if kind is not None:
            for m in memories_repo.active_matching(s, cube_id, kind.patterns, limit):
                found.setdefault(m.id, (m, f"kind {kind.name}"))
        index = self.indexes.vectors.peek(cube_id)
        if index is not None:
            scores, vec_ids = index.search(query, limit)
            dense = {int(v): float(sc) for sc, v in zip(scores.tolist(), vec_ids.tolist())
                     if sc >= self.settings.forget_min_score}
            for m in memories_repo.active_by_vec_ids(s, list(dense), cube_id=cube_id).values():
                found.setdefault(m.id, (m, f"dense {dense[m.vec_id]:.3f}"))
        # This call's own turns are not in the index until it commits: compare with their stored vectors.
        for m in memories_repo.memories_by_ids(s, [mid for mid, i in batch.items() if i < at]):
            score = float(np.frombuffer(m.embedding, dtype=np.float32) @ query)
            if m.status == "active" and score >= self.settings.forget_min_score:
                found.setdefault(m.id, (m, f"dense {score:.3f}"))
        return found

    # -- API use cases -----------------------------------------------------------------------------------------
    def list(self, principal: Principal, cube_id: uuid.UUID, limit: int) -> ForgetRequestList:
        tenant_id = principal.require_cube(cube_id, "read")
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
            return ForgetRequestList(forget_requests=[request_out(r) for r in repo.in_cube(s, cube_id, limit)])

    def revert(self, principal: Principal, request_id: uuid.UUID) -> ForgetRequestOut:
        """Bring back what a request archived, exactly as it was; memories changed since (restored, deleted)
        are left alone and listed. A purged request cannot be reverted."""
        tenant_id = principal.require_tenant()

        def work(tx: Tx) -> ForgetRequestOut:
            s = tx.session
            row = repo.for_tenant(s, tenant_id, request_id, lock=True)
            if row is None:
                raise NotFound("forget request", request_id)
            principal.require_object(row.cube_id, "write", "forget request", request_id)
            if row.status != "applied":
                why = "its memories were destroyed" if row.status == "purged" else "it was reverted already"
                raise Conflict(f"forget request is {row.status}: {why}", {"status": row.status})
            restored: list[tuple[int, np.ndarray]] = []
            skipped: list[str] = []
            redacted: dict[str, int] = row.details.get("redacted", {})
            originals = {mid: versions[-1].snapshot["content"] for mid, versions in memories_repo.versions_of(
                s, [uuid.UUID(i) for i in redacted]).items() if versions}
            unredacted: list[Memory] = []
            for m in memories_repo.memories_locked(s, row.memory_ids):
                if str(m.id) in redacted:  # the text it had, if nothing changed it since
                    if m.version != redacted[str(m.id)] or m.status != "active" or m.id not in originals:
                        skipped.append(str(m.id))
                        continue
                    self._redact(s, m, originals[m.id], principal.key_id, row.id, restore=True)
                    unredacted.append(m)
                    continue
                if m.status != "archived":
                    skipped.append(str(m.id))
                    continue
                versioned_change(s, m, reason=f"{REASON} reverted", action="memory.restore", job_id=None,
                                 key_id=principal.key_id, mutate=lambda mem: setattr(mem, "status", "active"),
                                 details={"forget_request_id": str(row.id)})
                m.enriched_at = None  # back in the indexes: enrich it again
                restored.append((m.vec_id, np.frombuffer(m.embedding, dtype=np.float32)))
            row.status, row.reverted_at = "reverted", utcnow()
            details: dict[str, Any] = {**row.details, "skipped_on_revert": skipped}
            row.details = details
            audit.record(s, tenant_id=tenant_id, key_id=principal.key_id, action="forget_request.revert",
                         object_type="forget_request", object_id=row.id,
                         details={"cube_id": str(row.cube_id), "restored": len(restored), "skipped": skipped})
            s.flush()
            if restored:
                cube_id, vec_ids, vecs = row.cube_id, [v for v, _ in restored], np.stack([e for _, e in restored])
                tx.after_commit.append(lambda: self.indexes.add(cube_id, vec_ids, vecs))
            self._reindex(tx, row.cube_id, unredacted)
            return request_out(row)

        return self.tx.run(principal, None, ForgetRequestOut, work)
