"""Consolidation, run as a job per cube: near-duplicate merge, supersession of outdated facts, episodic →
semantic session summaries (extractive, or through an OpenAI-compatible LLM when configured), and
MemoryOS-style tiers with a heat score. Forgetting (``app.services.forgetting``) may follow in the same job.

Every change is ``versioned_change``: a version with the prior state and a reason, version + 1, an audit row
with the job id. A change re-reads its memory under a row lock and is skipped when the memory moved on since
the job looked (archived, edited, merged by an earlier try), so a retried job never merges anything twice.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import faiss
import numpy as np

from app.llm import LLMUnavailable, fell_back, tracked
from app.memory.changes import versioned_change
from app.memory.facts import fact_key
from app.memory.records import heat_of, when
from app.memory.summaries import Summariser
from app.memory.text import content_hash
from app.models import Memory
from app.models.base import utcnow
from app.repositories import audit
from app.repositories import graph as graph_repo
from app.repositories import jobs as jobs_repo
from app.repositories import memories as memories_repo
from app.services.admission import numbers
from app.services.jobs import IDS_CAP, JobRun

log = logging.getLogger(__name__)

BATCH = 50  # changes per transaction
SEARCH_CHUNK = 256  # memories whose near duplicates are searched (and held) at once
@dataclass
class Change:
    memory_id: uuid.UUID
    version: int
    reason: str
    action: str
    fields: dict[str, Any]
    details: dict[str, Any]


class ConsolidationService:
    def __init__(self, summariser: Summariser, forget: Callable[[JobRun], dict[str, Any]] | None = None) -> None:
        self.summariser = summariser
        self.forget = forget

    def run(self, run: JobRun) -> dict[str, Any]:
        with run.sessions() as s:
            mems = memories_repo.active_memories(s, run.cube_id)
            s.expunge_all()
        result: dict[str, Any] = {"active_before": len(mems)}
        merges, supersedes = self._plan_merges(run, mems)
        merged, superseded = self._apply(run, merges, 0.0, 0.3), self._apply(run, supersedes, 0.3, 0.45)
        result["merged"], result["merged_ids"] = len(merged), [str(i) for i in merged[:IDS_CAP]]
        result["superseded"], result["superseded_ids"] = len(superseded), [str(i) for i in superseded[:IDS_CAP]]
        gone = {c.memory_id for c in merges + supersedes}
        live = [m for m in mems if m.id not in gone]
        if run.params.get("summaries", True):
            with tracked() as usage:
                result["summaries"] = self._summaries(run, live)
            result["llm"] = usage.report()
        else:
            result["summaries"] = 0
        run.progress(0.6)
        result.update(self._tiers(run))
        run.progress(0.75)
        if run.params.get("forget") and self.forget is not None:
            result["forgetting"] = self.forget(run)
        with run.sessions() as s:
            result["active_after"] = len(memories_repo.active_memories(s, run.cube_id))
        return result

    # -- planning ---------------------------------------------------------------------------------------------
    def _plan_merges(self, run: JobRun, mems: list[Memory]) -> tuple[list[Change], list[Change]]:
        if len(mems) < 2:
            return [], []
        st = run.settings
        vecs = np.ascontiguousarray(np.stack([np.frombuffer(m.embedding, dtype=np.float32) for m in mems]))
        index: Any = faiss.IndexFlatIP(vecs.shape[1])
        index.add(vecs)
        parent = list(range(len(mems)))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        scope = [(m.user_id, m.agent_id, m.memory_type, str((m.meta or {}).get("speaker") or "")) for m in mems]
        keys = [fact_key(m) for m in mems]
        nums = [numbers(m.content) for m in mems]
        # Range searches in chunks of queries: the pairs held at once are those of one chunk, not of the cube.
        for start in range(0, len(mems), SEARCH_CHUNK):
            lims, dists, labels = index.range_search(vecs[start:start + SEARCH_CHUNK],
                                                     float(st.consolidation_merge_similarity))
            for row in range(len(lims) - 1):
                i = start + row
                for p in range(lims[row], lims[row + 1]):
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
    def _apply(self, run: JobRun, changes: list[Change], p0: float, p1: float) -> list[uuid.UUID]:
        """Apply the changes still valid; the ids of the memories changed."""
        done: list[uuid.UUID] = []
        batch = run.batch(BATCH)
        for start in range(0, len(changes), batch):
            removed: list[int] = []
            with run.sessions.begin() as s:
                for c in changes[start : start + batch]:
                    m = memories_repo.lock_memory(s, c.memory_id)
                    if m is None or m.status != "active" or m.version != c.version:
                        continue  # moved on since the job looked (or an earlier try did this already)
                    target = c.fields.get("merged_into") or c.fields.get("superseded_by")
                    if target is not None:
                        t = memories_repo.lock_memory(s, target)
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
                    done.append(m.id)
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
            done_sessions = memories_repo.summarised_sessions(s, run.cube_id)
        written = 0
        for session_id, turns in by_session.items():
            if session_id in done_sessions or len(turns) < run.settings.summary_min_turns:
                continue
            turns.sort(key=lambda t: (when(t), t.vec_id))
            method = "extractive"
            try:
                if self.summariser.configured:
                    text, method = self.summariser.llm(turns), "llm"
                else:
                    fell_back("not_configured")
                    text = self.summariser.extractive(turns)
            except (LLMUnavailable, KeyError, ValueError, TypeError) as exc:
                log.warning("LLM summary of session %s failed (%s); using the extractive summary", session_id, exc)
                fell_back(exc)
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
                if session_id in memories_repo.summarised_sessions(s, run.cube_id):
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
            mems = memories_repo.active_memories(s, run.cube_id)
            heats = {m.id: heat_of(m, now) for m in mems}
            s.expunge_all()
        for start in range(0, len(mems), 500):
            # Heat is a derived score: rows another transaction holds (enrichment) are skipped, not waited for.
            with run.sessions.begin() as s:
                free = memories_repo.lock_free(s, [m.id for m in mems[start : start + 500]])
                if free:
                    memories_repo.set_heat(s, {i: heats[i] for i in free})
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
                free = set(memories_repo.lock_free(s, [c.memory_id for c in changes[start : start + 500]]))
                for c in changes[start : start + 500]:
                    if c.memory_id not in free:
                        continue  # busy elsewhere: the next run moves it
                    m = memories_repo.lock_memory(s, c.memory_id)
                    if m is None or m.status != "active" or m.version != c.version:
                        continue

                    def mutate(mem: Memory, tier: str = c.fields["tier"]) -> None:
                        mem.tier = tier

                    versioned_change(s, m, reason=c.reason, action=c.action, job_id=run.job_id, mutate=mutate,
                                     details=c.details)
                    done += 1
        return done
