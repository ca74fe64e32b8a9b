"""Consolidation, run as a job per cube: near-duplicate merge, supersession of outdated facts, episodic →
semantic session summaries (extractive, or through an OpenAI-compatible LLM when configured), and
MemoryOS-style tiers with a heat score. Forgetting (``app.services.forgetting``) may follow in the same job.

Every change is ``versioned_change``: a version with the prior state and a reason, version + 1, an audit row
with the job id. A change re-reads its memory under a row lock and is skipped when the memory moved on since
the job looked (archived, edited, merged by an earlier try), so a retried job never merges anything twice.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faiss
import httpx
import numpy as np
import re2
from sqlalchemy import update

from app.models import Memory
from app.models.base import utcnow
from app.repositories import audit
from app.repositories import graph as graph_repo
from app.repositories import jobs as jobs_repo
from app.services.admission import numbers
from app.services.jobs import JobRun, versioned_change
from app.services.memories import content_hash, indexed_text
from app.textscan import SPACE, WORD_CHARS, head

log = logging.getLogger(__name__)

BATCH = 50  # changes per transaction
STOP = frozenset("""
a an the and or but if so to of in on at for with from by about
as is are was were be been being am i you he she it we they me him
her us them my your his its our their this that these those what which who whom do
does did have has had will would can could should just really very too also not no yes
oh ok okay well like get got go going know think yeah thanks thank much lot there here
then than when how why all any some more most
""".split())  # noqa: SIM905
TOKEN = re.compile(r"[A-Za-z][A-Za-z'-]+|\d+(?:[.,:/]\d+)*")
SENTENCE = re.compile(r"(?<=[.!?])\s+")
# "<subject> <relation> <value>" statements. A bare pronoun subject only counts with a relation that names a
# lasting attribute (lives in, works at…), never with "is/am", which is how most chat sentences start.
# RE2 (linear time: in ``re`` the lazy subject, the value and the trailing spaces backtrack against each other),
# with Python's Unicode ``\w`` and ``\s`` spelled out, since RE2's are ASCII-only. The subject's 40-character
# bound is checked after the match (``fact_match``): forty copies of a Unicode class would not fit RE2's DFA.
W, S = WORD_CHARS, SPACE
POSSESSIVE = rf"(?:my|our|his|her|their|the|[A-Z][{W}-]+'s){S}+(?P<tail>[{W}' -]+?)"
ATTRIBUTE = (r"lives? in|lived in|moved to|relocated to|works? (?:at|for|as)|worked (?:at|for|as)|"
             r"(?:is|am|are) (?:now )?(?:living|working|based) (?:in|at|for)")
FACT = re2.compile(
    rf"(?i)^{S}*(?:(?P<subj>{POSSESSIVE}){S}+(?P<copula>is|are|was|were|has been|changed to|became)"
    rf"|(?P<who>i|we|he|she|they|[A-Z][{W}-]+){S}+(?P<rel>{ATTRIBUTE})){S}+(?P<value>[^.!?]{{1,80}})[.!]?{S}*$")
MAX_SUBJECT_TAIL = 40
MAX_FACT_CHARS = 1000
"""Longer than a name, a 40-character subject and an 80-character value can be: no fact, and no time spent."""


def fact_match(text: str) -> Any | None:
    """FACT's match on the stripped text (``match.string``), or None. The lazy tail is the shortest that fits,
    so a longer one than MAX_SUBJECT_TAIL means no fact."""
    text = text.strip()
    m = None if len(text) > MAX_FACT_CHARS else FACT.match(text)
    if m is None or (m.group("tail") is not None and len(m.group("tail")) > MAX_SUBJECT_TAIL):
        return None
    return m


RELATION = {"live": "residence", "moved": "residence", "relocated": "residence", "work": "work", "based": "residence"}


def content_words(text: str) -> list[str]:
    return [t.lower() for t in TOKEN.findall(head(text)) if t.lower() not in STOP]


def fact_key(m: Memory) -> tuple[str, str, str] | None:
    """(subject, relation, value) of a fact-like statement, or None. The speaker is part of the subject."""
    match = fact_match(m.content)
    if match is None:
        return None
    speaker = str((m.meta or {}).get("speaker") or m.user_id or "")
    value = match.group("value").strip().lower()
    if match.group("subj"):
        return f"{speaker}|{match.group('subj').strip().lower()}", "is", value
    rel = match.group("rel").lower()
    kind = next((v for k, v in RELATION.items() if k in rel), rel)
    return f"{speaker}|{match.group('who').lower()}", kind, value


def when(m: Memory) -> datetime:
    t = m.occurred_at or m.created_at
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def heat_of(m: Memory, now: datetime, half_life_days: float = 30.0) -> float:
    """MemoryOS heat: visits, interaction length and recency of the last visit (or of the write), each in 0..1."""
    visits = min(1.0, math.log1p(m.access_count or 0) / math.log1p(10))
    length = min(1.0, len(content_words(m.content)) / 12)
    last = m.last_accessed_at or m.created_at
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    recency = 0.5 ** (max(0.0, (now - last).total_seconds()) / 86400 / half_life_days)
    return round(0.45 * visits + 0.35 * length + 0.2 * recency, 4)


@dataclass
class Change:
    memory_id: uuid.UUID
    version: int
    reason: str
    action: str
    fields: dict[str, Any]
    details: dict[str, Any]


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int  # prompt + completion tokens as the endpoint reports them (0 when it does not)


def chat_completion(base_url: str, api_key: str | None, model: str, timeout: float,
                    messages: list[dict[str, str]], *, max_tokens: int | None = None,
                    json_mode: bool = False) -> Completion:
    """One deterministic call to an OpenAI-compatible ``/chat/completions``: every LLM step of the service
    (summaries, forget-request classifier, extraction, answers) goes through here."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body: dict[str, Any] = {"model": model, "temperature": 0, "messages": messages}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if json_mode:
        body["response_format"] = {"type": "json_object"}
    r = httpx.post(f"{base_url.rstrip('/')}/chat/completions", json=body, headers=headers, timeout=timeout)
    r.raise_for_status()
    data = r.json()
    usage = data.get("usage") or {}
    return Completion(str(data["choices"][0]["message"]["content"]).strip(), int(usage.get("total_tokens") or 0))


class Summariser:
    """Session summaries: the most central turns (extractive), or an OpenAI-compatible chat model."""

    def __init__(self, base_url: str | None, api_key: str | None, model: str, timeout: float, sentences: int) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        self.sentences = sentences

    def extractive(self, turns: Sequence[Memory]) -> str:
        vecs = np.stack([np.frombuffer(t.embedding, dtype=np.float32) for t in turns])
        centroid = vecs.mean(axis=0)
        centroid /= np.linalg.norm(centroid) or 1.0
        length = np.array([min(1.0, len(content_words(t.content)) / 12) for t in turns])
        score = vecs @ centroid + 0.3 * length  # central and informative; chit-chat is short
        top = sorted(np.argsort(-score)[: self.sentences].tolist())
        parts = []
        for i in top:
            text = " ".join(SENTENCE.split(indexed_text(turns[i].content, turns[i].meta).strip())[:2])
            parts.append(text if len(text) <= 300 else text[:297] + "...")
        return " ".join(parts)

    def llm(self, turns: Sequence[Memory]) -> str:
        assert self.base_url is not None
        transcript = "\n".join(indexed_text(t.content, t.meta) for t in turns)[:24_000]
        text = chat_completion(self.base_url, self.api_key, self.model, self.timeout, [
            {"role": "system", "content": "Summarise this conversation session in at most "
                                          f"{self.sentences} sentences of durable facts: who did what, when, "
                                          "preferences, plans. Name people. No preamble."},
            {"role": "user", "content": transcript},
        ]).text
        if not text:
            raise ValueError("the LLM returned an empty summary")
        return text[:4000]


class ConsolidationService:
    def __init__(self, summariser: Summariser, forget: Callable[[JobRun], dict[str, Any]] | None = None) -> None:
        self.summariser = summariser
        self.forget = forget

    def run(self, run: JobRun) -> dict[str, Any]:
        with run.sessions() as s:
            mems = jobs_repo.active_memories(s, run.cube_id)
            s.expunge_all()
        result: dict[str, Any] = {"active_before": len(mems)}
        merges, supersedes = self._plan_merges(run, mems)
        result["merged"] = self._apply(run, merges, 0.0, 0.3)
        result["superseded"] = self._apply(run, supersedes, 0.3, 0.45)
        gone = {c.memory_id for c in merges + supersedes}
        live = [m for m in mems if m.id not in gone]
        result["summaries"] = self._summaries(run, live) if run.params.get("summaries", True) else 0
        run.progress(0.6)
        result.update(self._tiers(run))
        run.progress(0.75)
        if run.params.get("forget") and self.forget is not None:
            result["forgetting"] = self.forget(run)
        with run.sessions() as s:
            result["active_after"] = len(jobs_repo.active_memories(s, run.cube_id))
        return result

    # -- planning ---------------------------------------------------------------------------------------------
    def _plan_merges(self, run: JobRun, mems: list[Memory]) -> tuple[list[Change], list[Change]]:
        if len(mems) < 2:
            return [], []
        st = run.settings
        vecs = np.ascontiguousarray(np.stack([np.frombuffer(m.embedding, dtype=np.float32) for m in mems]))
        index: Any = faiss.IndexFlatIP(vecs.shape[1])
        index.add(vecs)
        lims, dists, labels = index.range_search(vecs, float(st.consolidation_merge_similarity))
        parent = list(range(len(mems)))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        scope = [(m.user_id, m.agent_id, m.memory_type, str((m.meta or {}).get("speaker") or "")) for m in mems]
        keys = [fact_key(m) for m in mems]
        nums = [numbers(m.content) for m in mems]
        for i in range(len(mems)):
            for p in range(lims[i], lims[i + 1]):
                j, sim = int(labels[p]), float(dists[p])
                if j > i and scope[i] == scope[j] and sim >= st.consolidation_merge_similarity \
                        and not self._differs(keys[i], keys[j]) and nums[i] == nums[j]:
                    parent[find(j)] = find(i)
        # Statements of one subject and relation ("my favourite colour is …", "Alice lives in …"): the newest
        # value supersedes older, different values. Similar enough to be about the same thing, too.
        by_subject: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            if key is not None:
                by_subject[(*scope[i], key[0], key[1])].append(i)
        supersede: dict[int, tuple[int, float]] = {}
        for members in by_subject.values():
            if len(members) < 2:
                continue
            newest = max(members, key=lambda k: (when(mems[k]), mems[k].vec_id))
            for k in members:
                newest_key, key_k = keys[newest], keys[k]
                assert newest_key is not None and key_k is not None
                sim = float(vecs[k] @ vecs[newest])
                if k != newest and key_k[2] != newest_key[2] and when(mems[k]) < when(mems[newest]) \
                        and sim >= st.consolidation_supersede_similarity:
                    supersede[k] = (newest, sim)
        groups: dict[int, list[int]] = defaultdict(list)
        for i in range(len(mems)):
            groups[find(i)].append(i)
        merges: list[Change] = []
        merged: set[int] = set()
        for members in groups.values():
            if len(members) < 2:
                continue
            canon = max(members, key=lambda k: (mems[k].access_count, mems[k].useful_count - mems[k].wrong_count,
                                                mems[k].importance, -mems[k].vec_id))
            for k in members:
                if k == canon:
                    continue
                merged.add(k)
                sim = float(vecs[k] @ vecs[canon])
                merges.append(Change(mems[k].id, mems[k].version,
                                     f"merged into {mems[canon].id} (cosine {sim:.3f})", "memory.merge",
                                     {"status": "archived", "merged_into": mems[canon].id},
                                     {"merged_into": str(mems[canon].id), "similarity": round(sim, 4)}))
        supersedes: list[Change] = []
        for old, (new, sim) in supersede.items():
            if old in merged:
                continue
            target = new
            while target in merged:
                target = next(i for i in groups[find(target)] if i not in merged)
            if target == old:
                continue
            supersedes.append(Change(mems[old].id, mems[old].version,
                                     f"superseded by {mems[target].id}: a newer statement about the same subject",
                                     "memory.supersede", {"status": "archived", "superseded_by": mems[target].id},
                                     {"superseded_by": str(mems[target].id), "similarity": round(sim, 4)}))
        return merges, supersedes

    @staticmethod
    def _differs(a: tuple[str, str, str] | None, b: tuple[str, str, str] | None) -> bool:
        """Both state the same subject and relation with different values."""
        return a is not None and b is not None and a[:2] == b[:2] and a[2] != b[2]

    # -- applying ---------------------------------------------------------------------------------------------
    def _apply(self, run: JobRun, changes: list[Change], p0: float, p1: float) -> int:
        done = 0
        batch = run.batch(BATCH)
        for start in range(0, len(changes), batch):
            removed: list[int] = []
            with run.sessions.begin() as s:
                for c in changes[start : start + batch]:
                    m = jobs_repo.lock_memory(s, c.memory_id)
                    if m is None or m.status != "active" or m.version != c.version:
                        continue  # moved on since the job looked (or an earlier try did this already)
                    target = c.fields.get("merged_into") or c.fields.get("superseded_by")
                    if target is not None:
                        t = jobs_repo.lock_memory(s, target)
                        if t is None or t.status != "active":
                            continue

                    def mutate(mem: Memory, fields: dict[str, Any] = c.fields) -> None:
                        for name, value in fields.items():
                            setattr(mem, name, value)

                    versioned_change(s, m, reason=c.reason, action=c.action, job_id=run.job_id, mutate=mutate,
                                     details=c.details)
                    if c.action == "memory.supersede" and target is not None:
                        graph_repo.add_edges(s, run.cube_id, [(target, m.id, "updates", 1.0)])
                    removed.append(m.vec_id)
                    done += 1
                    run.pace()
                jobs_repo.set_progress(s, run.job_id, p0 + (p1 - p0) * min(1.0, (start + batch) / len(changes)))
            if removed:
                run.sink.remove(run.cube_id, removed)
        return done

    def _summaries(self, run: JobRun, live: list[Memory]) -> int:
        by_session: dict[str, list[Memory]] = defaultdict(list)
        for m in live:
            if m.memory_type == "episodic" and m.session_id:
                by_session[m.session_id].append(m)
        with run.sessions() as s:
            done_sessions = jobs_repo.summarised_sessions(s, run.cube_id)
        written = 0
        for session_id, turns in by_session.items():
            if session_id in done_sessions or len(turns) < run.settings.summary_min_turns:
                continue
            turns.sort(key=lambda t: (when(t), t.vec_id))
            method = "extractive"
            try:
                if self.summariser.base_url:
                    text, method = self.summariser.llm(turns), "llm"
                else:
                    text = self.summariser.extractive(turns)
            except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
                log.warning("LLM summary of session %s failed (%s); using the extractive summary", session_id, exc)
                text = self.summariser.extractive(turns)
                method = "extractive-fallback"
            day = when(turns[-1]).date().isoformat() if turns[-1].occurred_at else None
            content = f"Summary of session {session_id}" + (f" ({day})" if day else "") + f": {text}"
            vec = run.embed([content])[0]
            users = {t.user_id for t in turns}
            agents = {t.agent_id for t in turns}
            now = utcnow()
            row = Memory(
                id=uuid.uuid4(), tenant_id=run.tenant_id, cube_id=run.cube_id, kind="plaintext",
                memory_type="semantic", content=content, content_hash=content_hash(content),
                user_id=users.pop() if len(users) == 1 else None, agent_id=agents.pop() if len(agents) == 1 else None,
                session_id=session_id, occurred_at=turns[-1].occurred_at, created_at=now, updated_at=now,
                tags=["summary"], meta={}, status="active", version=1, importance=0.6, access_count=0,
                source={"type": "summary", "session_id": session_id, "method": method, "job_id": str(run.job_id),
                        "sources": [str(t.id) for t in turns]},
                embedding=vec.tobytes(), embedding_model=turns[0].embedding_model, embedding_dim=len(vec),
                tier="mid",
            )
            with run.sessions.begin() as s:
                if session_id in jobs_repo.summarised_sessions(s, run.cube_id):
                    continue
                s.add(row)
                s.flush()
                graph_repo.add_edges(s, run.cube_id, [(row.id, t.id, "derived_from", 1.0) for t in turns])
                audit.record(s, tenant_id=run.tenant_id, key_id=None, action="memory.summarise",
                             object_type="memory", object_id=row.id,
                             details={"version": 1, "job_id": str(run.job_id), "session_id": session_id,
                                      "method": method, "sources": len(turns)})
                vec_id = row.vec_id
            run.sink.add(run.cube_id, [vec_id], vec.reshape(1, -1))
            written += 1
            run.pace()
        return written

    def _tiers(self, run: JobRun) -> dict[str, Any]:
        """Heat for every active memory (a derived score, updated in place) and tier moves (versioned):
        short = the newest sessions' turns and anything written in the last day; mid = older turns and session
        summaries; long = profile facts (semantic/procedural memories) and whatever grows hot (promotion)."""
        now = utcnow()
        with run.sessions() as s:
            mems = jobs_repo.active_memories(s, run.cube_id)
            heats = {m.id: heat_of(m, now) for m in mems}
            s.expunge_all()
        for start in range(0, len(mems), 500):
            # Heat is a derived score: rows another transaction holds (enrichment) are skipped, not waited for.
            with run.sessions.begin() as s:
                free = jobs_repo.lock_free(s, [m.id for m in mems[start : start + 500]])
                if free:
                    s.execute(update(Memory), [{"id": i, "heat": heats[i]} for i in free])
        sessions_by_time: dict[str, datetime] = {}
        for m in mems:
            if m.memory_type == "episodic" and m.session_id:
                t = when(m)
                if m.session_id not in sessions_by_time or t > sessions_by_time[m.session_id]:
                    sessions_by_time[m.session_id] = t
        newest = set(sorted(sessions_by_time, key=lambda k: sessions_by_time[k])[-2:])
        changes: list[Change] = []
        moves: dict[str, int] = defaultdict(int)
        for m in mems:
            heat = heats[m.id]
            is_summary = (m.source or {}).get("type") == "summary"
            if m.tier == "long":
                continue  # promotion only
            if (m.memory_type in ("semantic", "procedural") and not is_summary) or heat >= 0.7:
                tier = "long"
            elif is_summary or not ((m.session_id in newest) or (now - m.created_at).total_seconds() < 86400):
                tier = "mid"
            else:
                tier = "short"
            if tier != m.tier and not (m.tier == "mid" and tier == "short"):
                moves[f"{m.tier}->{tier}"] += 1
                changes.append(Change(m.id, m.version, f"tier {m.tier} -> {tier} (heat {heat:.2f})", "memory.tier",
                                      {"tier": tier}, {"tier": tier, "heat": heat}))
        applied = self._apply_tiers(run, changes)
        return {"tier_moves": dict(moves), "tier_changes": applied}

    def _apply_tiers(self, run: JobRun, changes: list[Change]) -> int:
        done = 0
        for start in range(0, len(changes), 500):
            with run.sessions.begin() as s:
                free = set(jobs_repo.lock_free(s, [c.memory_id for c in changes[start : start + 500]]))
                for c in changes[start : start + 500]:
                    if c.memory_id not in free:
                        continue  # busy elsewhere: the next run moves it
                    m = jobs_repo.lock_memory(s, c.memory_id)
                    if m is None or m.status != "active" or m.version != c.version:
                        continue

                    def mutate(mem: Memory, tier: str = c.fields["tier"]) -> None:
                        mem.tier = tier

                    versioned_change(s, m, reason=c.reason, action=c.action, job_id=run.job_id, mutate=mutate,
                                     details=c.details)
                    done += 1
        return done


def summariser_from(settings: Any) -> Summariser:
    return Summariser(settings.llm_base_url, settings.llm_api_key, settings.llm_model, settings.llm_timeout_seconds,
                      settings.summary_sentences)
