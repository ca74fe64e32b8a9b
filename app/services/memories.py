"""Plaintext memory use cases: add, list, update (versioned), soft delete, restore, messages, export/import."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import Conflict, InvalidInput, PayloadTooLarge
from app.llm import tracked
from app.memory.access import require_cube, require_memory
from app.memory.changes import versioned_change
from app.memory.filters import memory_filter
from app.memory.records import aware, memory_out, when
from app.memory.text import content_hash, indexed_text
from app.models import Memory
from app.models.base import utcnow
from app.principal import Principal
from app.repositories import audit
from app.repositories import memories as repo
from app.schemas.cubes import ImportResult
from app.schemas.jobs import AdmissionItem
from app.schemas.memories import (
    ExportedMemory,
    ImportedMemory,
    ImportLine,
    MemoryBatch,
    MemoryFilters,
    MemoryHistory,
    MemoryIn,
    MemoryList,
    MemoryOut,
    MemoryPatch,
    MemoryVersionOut,
    MessagesCreate,
)
from app.schemas.routing import LLMReport
from app.services.admission import AdmissionService, Candidate, Decision
from app.services.base import Idempotency, Transactor, Tx
from app.services.derived import DerivedIndexes
from app.services.forget_requests import ForgetRequestService
from app.services.quotas import reserve
from app.services.routing.extraction import extract
from app.services.supersession import Supersession
from app.vector.embedder import Embedder

EXPORT_FORMAT = "memcubed.cube-export"
EXPORT_VERSION = 1


def encode_cursor(m: Memory, order: str = "created") -> str:
    """The row's sort key in ``order`` (see ``repo.list_page``), with the order named for an event cursor."""
    parts = [m.created_at.isoformat(), str(m.id)]
    if order == "event":
        parts = ["event", when(m).isoformat(), *parts]
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode()


def decode_cursor(cursor: str, order: str = "created") -> tuple[Any, ...]:
    """The sort key a cursor of ``order`` holds; a cursor of another order (or none of ours) is refused."""
    try:
        parts = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        if (parts[0] == "event") != (order == "event"):
            raise ValueError("cursor of another order")
        *times, mid = parts[1:] if order == "event" else parts
        if len(times) != (2 if order == "event" else 1):
            raise ValueError("wrong number of parts")
        return (*(datetime.fromisoformat(t) for t in times), uuid.UUID(mid))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this service returned for this order",
                           {"field": "cursor", "order": order}) from exc


class MemoryService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], tx: Transactor, embedder: Embedder,
                 indexes: DerivedIndexes, admission: AdmissionService, forget_requests: ForgetRequestService,
                 supersession: Supersession) -> None:
        self.settings = settings
        self.sessions = sessions
        self.tx = tx
        self.embedder = embedder
        self.indexes = indexes
        self.admission = admission
        self.forget_requests = forget_requests
        self.supersession = supersession

    # -- checks -----------------------------------------------------------------------------------
    def _check_batch(self, items: Sequence[MemoryIn]) -> None:
        if len(items) > self.settings.max_batch:
            raise PayloadTooLarge(f"at most {self.settings.max_batch} memories per request",
                                  {"count": len(items), "limit": self.settings.max_batch})
        for i, item in enumerate(items):
            self._check_content(item.content, f"memories[{i}].content")
            self._check_json(item.metadata, f"memories[{i}].metadata")
            self._check_json(item.source, f"memories[{i}].source")

    def _check_content(self, content: str, field: str) -> None:
        size = len(content.encode())
        if size > self.settings.max_memory_bytes:
            raise PayloadTooLarge(f"{field} is {size} bytes; the limit is {self.settings.max_memory_bytes}",
                                  {"field": field, "bytes": size, "limit": self.settings.max_memory_bytes})
        if not content.strip():
            raise InvalidInput(f"{field} is blank", {"field": field})
        if "\x00" in content:
            raise InvalidInput(f"{field} contains a NUL character", {"field": field})

    @staticmethod
    def _check_json(value: Any, field: str) -> None:
        """What Postgres JSONB refuses: NUL, NaN/Infinity, lone surrogates."""
        try:
            text = json.dumps(value, allow_nan=False, ensure_ascii=False)
            text.encode()
        except ValueError as exc:  # NaN/Infinity, or a lone surrogate (UnicodeEncodeError)
            raise InvalidInput(f"{field} is not storable JSON ({exc})", {"field": field}) from exc
        if "\\u0000" in text:
            raise InvalidInput(f"{field} contains a NUL character", {"field": field})

    def _row(self, tenant_id: uuid.UUID, cube_id: uuid.UUID, item: MemoryIn, vec: np.ndarray) -> Memory:
        now = utcnow()
        return Memory(
            tenant_id=tenant_id, cube_id=cube_id, kind="plaintext", memory_type=item.memory_type,
            content=item.content, content_hash=content_hash(item.content), user_id=item.user_id,
            agent_id=item.agent_id, session_id=item.session_id, occurred_at=aware(item.occurred_at),
            created_at=now, updated_at=now, tags=item.tags, meta=item.metadata, source=item.source,
            status="active", version=1, importance=item.importance, access_count=0,
            embedding=vec.tobytes(), embedding_model=self.embedder.name, embedding_dim=self.embedder.dim,
        )

    # -- writes -----------------------------------------------------------------------------------
    def add(self, principal: Principal, cube_id: uuid.UUID, items: Sequence[MemoryIn],
            idem: Idempotency | None = None, action: str = "memory.create",
            then: Callable[[Tx, MemoryBatch], None] | None = None) -> MemoryBatch:
        """All or nothing: every item is validated and embedded before one transaction writes them; ``then``
        does more in the same transaction (a forget request made by the messages written)."""
        principal.require_cube(cube_id, "write")
        self._check_batch(items)
        vecs = self.embedder.encode([indexed_text(item.content, item.metadata) for item in items])
        return self.add_embedded(principal, cube_id, items, vecs, idem, action, then)

    def add_embedded(self, principal: Principal, cube_id: uuid.UUID, items: Sequence[MemoryIn], vecs: np.ndarray,
                     idem: Idempotency | None = None, action: str = "memory.create",
                     then: Callable[[Tx, MemoryBatch], None] | None = None) -> MemoryBatch:
        """``add`` for items whose vectors are already known (a merge reuses the source cube's), with no batch cap."""
        tenant_id = principal.require_cube(cube_id, "write")

        def work(tx: Tx) -> MemoryBatch:
            require_cube(tx.session, tenant_id, cube_id)
            decisions = self._admit(tx.session, cube_id, items, vecs)
            planned: list[tuple[int, Memory]] = []
            ids: dict[int, uuid.UUID] = {}
            for i, (it, v, d) in enumerate(zip(items, vecs, decisions)):
                if d.admission.status == "rejected":
                    continue
                row = self._row(tenant_id, cube_id, it, v)
                row.id = ids[i] = uuid.uuid4()
                if d.merge_with_item is not None:
                    d.admission.merged_into = ids[d.merge_with_item]
                if d.admission.status == "merged":
                    row.status, row.merged_into = "archived", d.admission.merged_into
                planned.append((i, row))
            reserve(tx.session, self.settings, tenant_id, "memories", sum(r.status == "active" for _, r in planned))
            rows = repo.add_memories(tx.session, [r for _, r in planned])
            replaced, dropped = self.supersession.apply(tx.session, principal.key_id, cube_id, rows,
                                                        vecs[[i for i, _ in planned]])
            if dropped:
                tx.after_commit.append(lambda: self.indexes.remove(cube_id, dropped))
            details: dict[str, Any] = {"memory_ids": [str(r.id) for r in rows]}
            if len(rows) != len(items) or any(r.status != "active" for r in rows):
                details["admission"] = [d.admission.status for d in decisions]
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action=action,
                         object_type="cube", object_id=cube_id, details=details)
            active = [(r.vec_id, i) for i, r in planned if r.status == "active"]
            if active:
                vec_ids, act_vecs = [a[0] for a in active], vecs[[a[1] for a in active]]
                tx.after_commit.append(lambda: self.indexes.add(cube_id, vec_ids, act_vecs, new=True))
            by_index = dict(planned)
            outs = []
            for i, _ in planned:
                out = memory_out(by_index[i])
                out.admission = decisions[i].admission
                outs.append(out)
            report = [AdmissionItem(index=i, memory_id=by_index[i].id if i in by_index else None,
                                    supersedes=replaced.get(by_index[i].id, []) if i in by_index else [],
                                    **d.admission.model_dump()) for i, d in enumerate(decisions)]
            batch = MemoryBatch(memories=outs, admission=report)
            if then is not None:
                then(tx, batch)
            batch.llm = LLMReport(**usage.report())
            return batch

        with tracked() as usage:
            return self.tx.run(principal, idem, MemoryBatch, work)

    def _admit(self, s: Session, cube_id: uuid.UUID, items: Sequence[MemoryIn], vecs: np.ndarray) -> list[Decision]:
        candidates = [Candidate(it.content, content_hash(it.content), (it.user_id, it.agent_id, it.memory_type))
                      for it in items]
        return self.admission.decide(s, cube_id, candidates, vecs)

    def add_messages(self, principal: Principal, cube_id: uuid.UUID, body: MessagesCreate,
                     idem: Idempotency | None = None) -> MemoryBatch:
        """Conversation turns become episodic memories with their event time. A user's forget request among them
        ("forget my address") is stored redacted and applied in the same transaction (see forget_requests)."""
        # Sizes first: the forget-request detector and the extraction tiers read every message.
        self._check_batch([MemoryIn(content=msg.content) for msg in body.messages])
        with tracked():  # the classifier's and extraction's calls are reported with the write's
            items, then = self._forget_requests_in(principal, cube_id, body)
            if body.budget is None:
                return self.add(principal, cube_id, items, idem, action="messages.create", then=then)
            items, routing = extract(self.settings, body.budget, items)
            batch = self.add(principal, cube_id, items, idem, action="messages.create", then=then)
        if batch.llm is not None:
            routing.llm = batch.llm
        batch.routing = routing
        return batch

    def _forget_requests_in(self, principal: Principal, cube_id: uuid.UUID, body: MessagesCreate,
                            ) -> tuple[list[MemoryIn], Callable[[Tx, MemoryBatch], None] | None]:
        """The messages as memories, forget requests redacted, and the hook that applies them in the write."""
        tenant_id = principal.require_cube(cube_id, "write")  # before any classifier call
        service = self.forget_requests
        plan = service.plan(body.messages)
        items = []
        for i, msg in enumerate(body.messages):
            meta = {"role": msg.role, "speaker": msg.speaker, "message_id": msg.id}
            content = msg.content
            if plan is not None and i in plan.found:
                content, meta["forget_request_id"] = plan.redact(i, content), str(plan.request_id)
            items.append(MemoryIn(
                content=content, memory_type="episodic", user_id=body.user_id, agent_id=body.agent_id,
                session_id=body.session_id, occurred_at=msg.timestamp,
                metadata={k: v for k, v in meta.items() if v is not None},
                source={"type": "message", "role": msg.role},
            ))
        if plan is None:
            return items, None
        found = plan

        def then(tx: Tx, batch: MemoryBatch) -> None:
            # Which message each stored turn came from: a request covers the turns before it, not after it.
            turns = {a.memory_id: a.index for a in batch.admission
                     if a.memory_id is not None and a.index < len(body.messages)}
            done = service.apply(tx, principal, tenant_id, cube_id, found, turns)
            batch.forget_request_id, batch.forgotten, batch.forget_flagged = (done.request_id, done.memory_ids,
                                                                              done.stale)
            gone = set(done.memory_ids)
            batch.memories = [m for m in batch.memories if m.id not in gone or done.policy == "archive"]
            for out in batch.memories:
                if out.id in gone:
                    out.status = "archived"

        return items, then

    def _change(self, principal: Principal, memory_id: uuid.UUID, reason: str, action: str,
                mutate: Any) -> MemoryOut:
        """Keep the prior state as a version, apply ``mutate``, bump the version, sync the index after commit."""
        def work(tx: Tx) -> MemoryOut:
            m = require_memory(tx.session, principal, memory_id, "write", lock=True)
            was_active, old_embedding = m.status == "active", m.embedding
            versioned_change(tx.session, m, reason=reason, action=action, job_id=None, mutate=mutate,
                             key_id=principal.key_id)
            tx.session.flush()
            cube_id, vec_id, is_active = m.cube_id, m.vec_id, m.status == "active"
            stored = np.frombuffer(m.embedding, dtype=np.float32).reshape(1, -1)
            if is_active and (not was_active or m.embedding != old_embedding):
                m.enriched_at = None  # new content or back from deletion: enrich and index it again
                tx.after_commit.append(lambda: self.indexes.add(cube_id, [vec_id], stored))
            elif was_active and not is_active:
                tx.after_commit.append(lambda: self.indexes.remove(cube_id, [vec_id]))
            else:  # tags, time, metadata: no index change, but cached results show them
                tx.after_commit.append(lambda: self.indexes.changed(cube_id))
            return memory_out(m)

        return self.tx.run(principal, None, MemoryOut, work)

    def update(self, principal: Principal, memory_id: uuid.UUID, patch: MemoryPatch) -> MemoryOut:
        fields = patch.model_dump(exclude_unset=True, exclude={"reason"})
        if "content" in fields:
            self._check_content(fields["content"], "content")
        for name in ("metadata", "source"):
            if name in fields:
                self._check_json(fields[name], name)

        def mutate(m: Memory) -> None:
            if m.status == "deleted":
                raise Conflict("memory is deleted; restore it before changing it", {"id": str(m.id)})
            for name, value in fields.items():
                if name == "metadata":
                    m.meta = value
                elif name == "occurred_at":
                    m.occurred_at = aware(value)
                else:
                    setattr(m, name, value)
            if "content" in fields or "metadata" in fields:
                # Embedded under the row lock: a few ms, and the stored vector always matches the stored text.
                m.content_hash = content_hash(m.content)
                m.embedding = self.embedder.encode([indexed_text(m.content, m.meta)])[0].tobytes()

        return self._change(principal, memory_id, patch.reason, "memory.update", mutate)

    def delete(self, principal: Principal, memory_id: uuid.UUID) -> MemoryOut:
        """Soft delete: a new version with status ``deleted``; restore brings it back."""
        current = self.get(principal, memory_id)
        principal.require_permission("write")
        if current.status == "deleted":
            return current

        def mutate(m: Memory) -> None:
            m.status = "deleted"

        return self._change(principal, memory_id, "delete", "memory.delete", mutate)

    def restore(self, principal: Principal, memory_id: uuid.UUID) -> MemoryOut:
        def mutate(m: Memory) -> None:
            if m.status == "active":
                raise Conflict("memory is already active", {"id": str(m.id)})
            session = Session.object_session(m)
            assert session is not None  # loaded by _change's transaction
            reserve(session, self.settings, m.tenant_id, "memories", 1)
            m.status = "active"
            m.merged_into = m.superseded_by = None  # back on its own: no longer a duplicate or an old fact

        return self._change(principal, memory_id, "restore", "memory.restore", mutate)

    # -- reads ------------------------------------------------------------------------------------
    def get(self, principal: Principal, memory_id: uuid.UUID) -> MemoryOut:
        with self.sessions() as s:
            m = require_memory(s, principal, memory_id, "read")
            return memory_out(m)

    def list_page(self, principal: Principal, cube_id: uuid.UUID, filters: MemoryFilters, limit: int,
                  cursor: str | None, order: str = "created") -> MemoryList:
        tenant_id = principal.require_cube(cube_id, "read")
        after = decode_cursor(cursor, order) if cursor else None
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
            rows = repo.list_page(s, cube_id, memory_filter(filters), limit + 1, after, order)
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1], order) if len(rows) > limit else None
        return MemoryList(memories=[memory_out(m) for m in page], next_cursor=next_cursor)

    def history(self, principal: Principal, memory_id: uuid.UUID) -> MemoryHistory:
        with self.sessions() as s:
            m = require_memory(s, principal, memory_id, "read")
            versions = repo.versions_of(s, [m.id])[m.id]
            return MemoryHistory(
                memory_id=m.id, current_version=m.version,
                versions=[MemoryVersionOut.model_validate(v, from_attributes=True) for v in versions],
            )

    # -- export / import --------------------------------------------------------------------------
    def export(self, principal: Principal, cube_id: uuid.UUID) -> Iterator[bytes]:
        """JSON Lines: a header, then every memory (any status) with all its versions."""
        tenant_id = principal.require_cube(cube_id, "read")
        with self.sessions() as s:
            cube = require_cube(s, tenant_id, cube_id)
            header = {"type": "header", "format": EXPORT_FORMAT, "format_version": EXPORT_VERSION,
                      "cube": {"name": cube.name, "description": cube.description, "owner_id": cube.owner_id},
                      "embedding_model": self.embedder.name, "exported_at": utcnow().isoformat()}

        def lines() -> Iterator[bytes]:
            yield (json.dumps(header) + "\n").encode()
            with self.sessions() as s:
                chunk: list[Memory] = []
                for m in repo.all_in_cube(s, cube_id):
                    chunk.append(m)
                    if len(chunk) == 500:
                        yield from self._export_chunk(s, chunk)
                        chunk = []
                yield from self._export_chunk(s, chunk)

        return lines()

    @staticmethod
    def _export_chunk(s: Session, chunk: list[Memory]) -> Iterator[bytes]:
        versions = repo.versions_of(s, [m.id for m in chunk])
        for m in chunk:
            line = ExportedMemory(
                type="memory", memory=memory_out(m),
                versions=[MemoryVersionOut.model_validate(v, from_attributes=True) for v in versions[m.id]],
            )
            yield (line.model_dump_json() + "\n").encode()

    def import_(self, principal: Principal, cube_id: uuid.UUID, body: bytes,
                idem: Idempotency | None = None) -> ImportResult:
        """Recreate every memory and version of an export in this cube, with new ids; all or nothing."""
        tenant_id = principal.require_cube(cube_id, "write")
        items = self._parse_export(body)
        self.check_lines(items, "line", 2)
        vecs = self.embedder.encode([indexed_text(item.memory.content, item.memory.metadata) for item in items])

        def work(tx: Tx) -> ImportResult:
            require_cube(tx.session, tenant_id, cube_id)
            rows = [self.imported_row(tenant_id, cube_id, item.memory, vec) for item, vec in zip(items, vecs)]
            reserve(tx.session, self.settings, tenant_id, "memories", sum(r.status == "active" for r in rows))
            repo.add_memories(tx.session, rows)
            for item, row in zip(items, rows):
                for v in item.versions:
                    repo.add_imported_version(tx.session, row.id, v.version, v.snapshot, v.reason, v.created_at)
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="cube.import",
                         object_type="cube", object_id=cube_id, details={"count": len(rows)})
            active = [(r.vec_id, v) for r, v in zip(rows, vecs) if r.status == "active"]
            if active:
                ids, act_vecs = [a[0] for a in active], np.stack([a[1] for a in active])
                tx.after_commit.append(lambda: self.indexes.add(cube_id, ids, act_vecs, new=True))
            return ImportResult(imported=len(rows),
                                id_map={str(it.memory.id): str(r.id) for it, r in zip(items, rows)})

        return self.tx.run(principal, idem, ImportResult, work)

    def check_lines(self, items: Sequence[ImportLine], where: str, first: int) -> None:
        """What Postgres would refuse in exported lines, found before anything is written (import, archives)."""
        for i, item in enumerate(items):
            at = f"{where} {i + first}"
            self._check_content(item.memory.content, f"{at}: memory.content")
            self._check_json(item.memory.metadata, f"{at}: memory.metadata")
            self._check_json(item.memory.source, f"{at}: memory.source")
            for v in item.versions:
                self._check_json(v.snapshot, f"{at}: versions.snapshot")

    def imported_row(self, tenant_id: uuid.UUID, cube_id: uuid.UUID, src: ImportedMemory, vec: np.ndarray) -> Memory:
        """A new row (new id) for an exported memory, keeping its times, status, version and counters."""
        return Memory(
            tenant_id=tenant_id, cube_id=cube_id, kind=src.kind, memory_type=src.memory_type,
            content=src.content, content_hash=content_hash(src.content), user_id=src.user_id,
            agent_id=src.agent_id, session_id=src.session_id, occurred_at=src.occurred_at,
            created_at=src.created_at, updated_at=src.updated_at, tags=src.tags, meta=src.metadata,
            source=src.source, status=src.status, version=src.version, importance=src.importance,
            access_count=src.access_count, last_accessed_at=src.last_accessed_at,
            embedding=vec.tobytes(), embedding_model=self.embedder.name, embedding_dim=self.embedder.dim,
        )

    @staticmethod
    def _parse_export(body: bytes) -> list[ImportLine]:
        lines = [ln for ln in body.splitlines() if ln.strip()]
        if not lines:
            raise InvalidInput("import body is empty; send the JSON Lines of an export")
        try:
            header = json.loads(lines[0])
        except ValueError as exc:
            raise InvalidInput("line 1 is not JSON", {"line": 1}) from exc
        if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
            raise InvalidInput(f"line 1 must be a {EXPORT_FORMAT} header", {"line": 1})
        if header.get("format_version") != EXPORT_VERSION:
            raise InvalidInput(f"unsupported format_version {header.get('format_version')!r}", {"line": 1})
        items = []
        for n, raw in enumerate(lines[1:], start=2):
            try:
                items.append(ImportLine.model_validate_json(raw))
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_context=False, include_input=False)
                raise InvalidInput(f"line {n} is not a valid exported memory", {"line": n, "errors": errors}) from exc
        return items
