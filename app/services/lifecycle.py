"""Cube lifecycle: a portable archive (export and import, in any tenant or deployment), fork, snapshots and
restore, merge of one cube into another through admission, and fusing plaintext into activation or parametric
memory (as jobs).

Archive, fork and snapshot share one format (``app.lifecycle.archive``): ``memories.jsonl`` (every memory, any
status, with its versions, enrichment and embedding), ``edges.jsonl``, ``entities.jsonl``, and in full archives
``activations.jsonl`` + KV files and ``adapters.jsonl`` + LoRA files. Snapshots carry the plaintext and graph
only: their payload is kept in Postgres, and caches and adapters are not what a restore puts back.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from app.activation.fingerprint import pack_tokens, token_hash, unpack_tokens
from app.activation.model import HFCausalLM
from app.activation.store import disk_path
from app.config import Settings
from app.errors import Conflict
from app.lifecycle.archive import Archive, ArchiveWriter, bad, read_archive, sha256_hex
from app.memory.access import require_cube
from app.memory.records import memory_out
from app.memory.text import indexed_text
from app.models import Activation, Adapter, Cube, Memory
from app.models.base import utcnow
from app.parametric.attach import base_info
from app.parametric.files import AdapterFiles
from app.principal import Principal
from app.repositories import audit, cubes
from app.repositories import graph as graph_repo
from app.repositories import jobs as jobs_repo
from app.repositories import memories as repo
from app.repositories import snapshots as snap_repo
from app.schemas.lifecycle import (
    ActivationLine,
    AdapterLine,
    ArchiveCounts,
    ArchiveImportResult,
    ArchiveLine,
    EdgeLine,
    EntityLine,
    ForkRequest,
    ManifestHeader,
)
from app.schemas.memories import ArchivedOut, MemoryVersionOut
from app.services.activation import ActivationService
from app.services.archive_checks import check_activations, check_adapters, check_embeddings
from app.services.base import Idempotency, Transactor, Tx
from app.services.cubes import cube_out
from app.services.derived import DerivedIndexes
from app.services.enrichment import window
from app.services.forgetting import policy_of
from app.services.memories import MemoryService
from app.services.quotas import reserve
from app.vector.fine import Window

MEMORIES, EDGES, ENTITIES = "memories.jsonl", "edges.jsonl", "entities.jsonl"
ACTIVATIONS, ADAPTERS = "activations.jsonl", "adapters.jsonl"
ROWS_PER_INSERT = 5000


@dataclass
class Plan:
    """A verified, parsed archive: everything an import writes, checked before its transaction opens."""

    manifest: dict[str, Any]
    header: ManifestHeader
    lines: list[ArchiveLine]
    vecs: np.ndarray
    reused: bool
    edges: list[EdgeLine]
    entities: list[EntityLine]
    activations: list[ActivationLine]
    adapters: list[AdapterLine]
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def counts(self) -> ArchiveCounts:
        return ArchiveCounts(memories=len(self.lines), versions=sum(len(ln.versions) for ln in self.lines),
                             edges=len(self.edges), entities=len(self.entities),
                             activations=len(self.activations), adapters=len(self.adapters))


def _rows(archive: Archive, name: str, model: type[BaseModel]) -> list[Any]:
    out = []
    for n, raw in enumerate(archive.lines(name), start=1):
        try:
            out.append(model.model_validate_json(raw))
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            raise bad(f"{name} line {n} is not valid", member=name, line=n, errors=errors) from exc
    return out


class LifecycleService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], tx: Transactor, memories: MemoryService,
                 indexes: DerivedIndexes, activation: ActivationService) -> None:
        self.settings = settings
        self.sessions = sessions
        self.tx = tx
        self.memories = memories
        self.indexes = indexes
        self.activation = activation
        self.adapter_files = AdapterFiles(settings.adapter_dir)

    # -- writing an archive ----------------------------------------------------------------------------------
    def archive(self, principal: Principal, cube_id: uuid.UUID) -> Iterator[bytes]:
        """The cube's archive as tar chunks; the cube is checked now, so a refusal is an error, not a bad file."""
        tenant_id = principal.require_cube(cube_id, "read")
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)

        def chunks() -> Iterator[bytes]:
            with self.sessions() as s:
                writer, header = self.collect(s, require_cube(s, tenant_id, cube_id), with_files=True)
            yield from writer.stream(header)

        return chunks()

    def collect(self, s: Session, cube: Cube, *, with_files: bool) -> tuple[ArchiveWriter, dict[str, Any]]:
        writer = ArchiveWriter()
        counts = ArchiveCounts()

        def memory_lines() -> Iterator[str]:
            chunk: list[Memory] = []
            for m in repo.all_in_cube(s, cube.id):
                chunk.append(m)
                if len(chunk) == 500:
                    yield from archived_lines(chunk)
                    chunk = []
            yield from archived_lines(chunk)

        def archived_lines(chunk: list[Memory]) -> Iterator[str]:
            versions = repo.versions_of(s, [m.id for m in chunk])
            for m in chunk:
                counts.versions += len(versions[m.id])
                yield ArchivedOut(
                    type="memory", memory=memory_out(m),
                    versions=[MemoryVersionOut.model_validate(v, from_attributes=True) for v in versions[m.id]],
                    embedding=base64.b64encode(m.embedding).decode(), enrichment=m.enrichment or {},
                    enriched_at=m.enriched_at,
                ).model_dump_json()

        counts.memories = writer.add_lines(MEMORIES, memory_lines())
        counts.edges = writer.add_lines(EDGES, (
            EdgeLine(source_id=e.source_id, target_id=e.target_id, type=e.type, weight=e.weight).model_dump_json()
            for e in snap_repo.edges_in_cube(s, cube.id)))
        counts.entities = writer.add_lines(ENTITIES, (
            EntityLine(key=e.key, name=e.name, kind=e.kind, mentions=e.mentions, memory_ids=ids).model_dump_json()
            for e, ids in snap_repo.entities_in_cube(s, cube.id)))
        fingerprints: set[str] = set()
        if with_files:
            activations = snap_repo.activations_in_cube(s, cube.id)
            fingerprints = {a.fingerprint for a in activations}
            counts.activations = writer.add_lines(ACTIVATIONS, [self._activation_line(writer, a) for a in activations])
            counts.adapters = writer.add_lines(ADAPTERS, [
                self._adapter_line(writer, a) for a in snap_repo.adapters_in_cube(s, cube.id)
                if self.adapter_files.exists(a.sha256)])
        policy = jobs_repo.get_policy(s, cube.id)
        header = {
            "cube": {"name": cube.name, "description": cube.description, "owner_id": cube.owner_id,
                     "provenance": cube.provenance or {}, "forget_policy": cube.forget_policy,
                     "policy": policy_of(policy).model_dump() if policy is not None else None},
            "source": {"cube_id": str(cube.id)},
            "embedding_model": {"name": self.memories.embedder.name, "dim": self.memories.embedder.dim},
            "activation_fingerprints": sorted(fingerprints),
            "counts": counts.model_dump(),
            "created_at": utcnow().isoformat(),
        }
        return writer, header

    def _activation_line(self, writer: ArchiveWriter, a: Activation) -> str:
        path = disk_path(self.settings.activation_dir, a.fingerprint, a.id)
        member = None
        if a.status == "active" and path.exists():
            member = f"activations/{a.id}.safetensors"
            writer.add_bytes(member, path.read_bytes())
        return ActivationLine(
            id=a.id, model_id=a.model_id, fingerprint=a.fingerprint, token_hash=a.token_hash, tokens=a.tokens,
            token_ids=base64.b64encode(a.token_ids).decode(), source=a.source, prefix_text=a.prefix_text,
            precision=a.precision, hits=a.hits, created_at=a.created_at, file=member,
        ).model_dump_json()

    def _adapter_line(self, writer: ArchiveWriter, a: Adapter) -> str:
        member = f"adapters/{a.sha256}.safetensors"
        if member not in writer.files:
            writer.add_bytes(member, self.adapter_files.read(a.sha256))
        return AdapterLine(
            name=a.name, version=a.version, base_fingerprint=a.base_fingerprint, base_model=a.base_model,
            rank=a.rank, alpha=a.alpha, target_modules=list(a.target_modules), sha256=a.sha256,
            size_bytes=a.size_bytes, metrics=a.metrics or {}, created_at=a.created_at,
        ).model_dump_json()

    # -- reading an archive ----------------------------------------------------------------------------------
    def plan(self, archive: Archive) -> Plan:
        """Parse and check every row against the others; embeddings are reused when the model is ours."""
        try:
            header = ManifestHeader.model_validate(archive.manifest)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            raise bad("manifest.json has an invalid cube header", member="manifest.json", errors=errors) from exc
        lines: list[ArchiveLine] = _rows(archive, MEMORIES, ArchiveLine)
        self.memories.check_lines(lines, f"{MEMORIES} line", 1)
        ids = {ln.memory.id for ln in lines}
        if len(ids) != len(lines):
            raise bad(f"{MEMORIES} repeats a memory id", member=MEMORIES)
        edges: list[EdgeLine] = _rows(archive, EDGES, EdgeLine)
        entities: list[EntityLine] = _rows(archive, ENTITIES, EntityLine)
        if any(e.source_id not in ids or e.target_id not in ids for e in edges):
            raise bad(f"{EDGES} names a memory the archive does not hold", member=EDGES)
        if any(m not in ids for e in entities for m in e.memory_ids):
            raise bad(f"{ENTITIES} names a memory the archive does not hold", member=ENTITIES)
        activations: list[ActivationLine] = _rows(archive, ACTIVATIONS, ActivationLine)
        for a in activations:
            self._check_activation(archive, a)
        adapters: list[AdapterLine] = _rows(archive, ADAPTERS, AdapterLine)
        for ad in adapters:
            data = archive.files.get(f"adapters/{ad.sha256}.safetensors")
            if data is None or sha256_hex(data) != ad.sha256:
                raise bad(f"adapter {ad.name!r} v{ad.version} has no file of its SHA-256", member=ADAPTERS)
        # Caches and adapters are checked as a create or an upload would: against the model, loaded only then.
        model = self.activation.engine().model if adapters or any(a.file for a in activations) else None
        check_activations(self.activation, activations, archive.files, model, ACTIVATIONS)
        check_adapters(adapters, archive.files, base_info(model) if isinstance(model, HFCausalLM) else None,
                       self.settings.adapter_max_bytes, ADAPTERS)
        plan = Plan(archive.manifest, header, lines, *self._vectors(archive.manifest, lines), edges, entities,
                    activations, adapters, archive.files)
        if archive.manifest.get("counts") != plan.counts.model_dump():
            raise bad("the manifest's counts do not match the files", counts=archive.manifest.get("counts"))
        return plan

    @staticmethod
    def _check_activation(archive: Archive, a: ActivationLine) -> None:
        try:
            ids = unpack_tokens(base64.b64decode(a.token_ids, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise bad(f"activation {a.id} has unreadable token ids", member=ACTIVATIONS) from exc
        if len(ids) != a.tokens or token_hash(ids) != a.token_hash:
            raise bad(f"activation {a.id}: token ids do not match tokens/token_hash", member=ACTIVATIONS)
        if a.file is not None and a.file not in archive.files:
            raise bad(f"activation {a.id}: {a.file!r} is missing", member=ACTIVATIONS)

    def _vectors(self, manifest: dict[str, Any], lines: Sequence[ArchiveLine]) -> tuple[np.ndarray, bool]:
        embedder = self.memories.embedder
        model = manifest.get("embedding_model")
        if model == {"name": embedder.name, "dim": embedder.dim} and lines:
            try:
                raw = [base64.b64decode(ln.embedding or "", validate=True) for ln in lines]
            except binascii.Error as exc:
                raise bad(f"{MEMORIES} holds an unreadable embedding", member=MEMORIES) from exc
            if all(len(r) == 4 * embedder.dim for r in raw):
                vecs = np.stack([np.frombuffer(r, dtype=np.float32) for r in raw])
                check_embeddings(vecs, embedder.dim, MEMORIES)
                return vecs, True
            raise bad(f"{MEMORIES} holds embeddings of the wrong size", member=MEMORIES)
        if not lines:
            return np.zeros((0, embedder.dim), dtype=np.float32), True
        return embedder.encode([indexed_text(ln.memory.content, ln.memory.metadata) for ln in lines]), False

    # -- import and fork -------------------------------------------------------------------------------------
    def import_archive(self, principal: Principal, body: bytes, name: str | None,
                       idem: Idempotency | None = None) -> ArchiveImportResult:
        """A new cube of the caller's tenant from an archive; all or nothing."""
        tenant_id = principal.require_unscoped()
        plan = self.plan(read_archive(body))
        header = plan.header
        provenance = {"imported_from": {"cube_id": header.source.get("cube_id"), "name": header.cube.name,
                                        "archive_created_at": header.created_at,
                                        "imported_at": utcnow().isoformat()}}
        return self._create_from(principal, tenant_id, plan, name or header.cube.name, None, provenance,
                                 "cube.import_archive", idem)

    def fork(self, principal: Principal, cube_id: uuid.UUID, body: ForkRequest,
             idem: Idempotency | None = None) -> ArchiveImportResult:
        """A new cube holding a copy of everything: its archive, imported at once (one code path, one format)."""
        tenant_id = principal.require_unscoped()
        with self.sessions() as s:
            cube = require_cube(s, tenant_id, cube_id)
            writer, header = self.collect(s, cube, with_files=True)
            suffix = f"-fork-{uuid.uuid4().hex[:6]}"  # within the 200-character name limit, whatever the name
            name = body.name or cube.name[:200 - len(suffix)] + suffix
        plan = self.plan(read_archive(writer.to_bytes(header)))
        provenance = {"forked_from": {"cube_id": str(cube_id), "at": utcnow().isoformat()}}
        return self._create_from(principal, tenant_id, plan, name, body.description, provenance, "cube.fork", idem)

    def _create_from(self, principal: Principal, tenant_id: uuid.UUID, plan: Plan, name: str,
                     description: str | None, provenance: dict[str, Any], action: str,
                     idem: Idempotency | None) -> ArchiveImportResult:
        server_fp = self._server_fingerprint(plan)
        written: list[Path] = []

        def work(tx: Tx) -> ArchiveImportResult:
            s = tx.session
            tx.after_commit.append(written.clear)  # committed: the rows own the KV files now
            if cubes.live_cube_by_name(s, tenant_id, name) is not None:
                raise Conflict(f"a cube named {name!r} exists; pass another name", {"name": name})
            self._reserve(s, tenant_id, plan, server_fp)
            header = plan.header.cube
            cube = cubes.add_cube(s, tenant_id=tenant_id, name=name,
                                  description=description if description is not None else header.description,
                                  owner_id=header.owner_id)
            cube.provenance = {**header.provenance, **provenance}
            cube.forget_policy = header.forget_policy
            if header.policy is not None:
                jobs_repo.put_policy(s, tenant_id, cube.id, header.policy.model_dump())
            rows = self._write_memories(tx, tenant_id, cube.id, plan)
            stale = self._write_activations(tx, tenant_id, cube.id, plan, server_fp, written)
            self._write_adapters(s, tenant_id, cube.id, plan, principal, written)
            audit.record(s, tenant_id=tenant_id, key_id=principal.key_id, action=action, object_type="cube",
                         object_id=cube.id, details={**plan.counts.model_dump(), "provenance": provenance})
            s.flush()
            # Every active memory waits: for enrichment, or (already enriched) for its fine indexes.
            return ArchiveImportResult(cube=cube_out(cube, sum(r.status != "deleted" for r in rows),
                                                     sum(r.status == "active" for r in rows)),
                                       counts=plan.counts, activations_stale=stale,
                                       embeddings="reused" if plan.reused else "recomputed")

        try:
            return self.tx.run(principal, idem, ArchiveImportResult, work)
        except BaseException:
            for path in written:  # KV and adapter files of a transaction that did not commit (or of a retried try)
                path.unlink(missing_ok=True)
            raise

    def _reserve(self, s: Session, tenant_id: uuid.UUID, plan: Plan, server_fp: str | None) -> None:
        """The new cube, its active memories, reusable KV files and adapters must fit the tenant's quotas."""
        reserve(s, self.settings, tenant_id, "cubes", 1)
        reserve(s, self.settings, tenant_id, "memories", sum(ln.memory.status == "active" for ln in plan.lines))
        reserve(s, self.settings, tenant_id, "activation_bytes", sum(
            len(plan.files[a.file]) for a in plan.activations if a.file is not None and a.fingerprint == server_fp))
        reserve(s, self.settings, tenant_id, "adapter_bytes", sum(ad.size_bytes for ad in plan.adapters))

    def _server_fingerprint(self, plan: Plan) -> str | None:
        """The running activation model's fingerprint, only when a cache file could be reused: loading the model
        is the only way to know it, and an archive without caches must not pay for that."""
        if not any(a.file is not None for a in plan.activations):
            return None
        return self.activation.engine().model.fingerprint.key

    def _write_memories(self, tx: Tx, tenant_id: uuid.UUID, cube_id: uuid.UUID, plan: Plan) -> list[Memory]:
        s = tx.session
        id_map = {ln.memory.id: uuid.uuid4() for ln in plan.lines}
        rows = []
        for ln, vec in zip(plan.lines, plan.vecs):
            row = self.memories.imported_row(tenant_id, cube_id, ln.memory, vec)
            src = ln.memory
            row.id, row.tier, row.heat = id_map[src.id], src.tier, src.heat
            row.useful_count, row.not_useful_count, row.wrong_count = (src.feedback.useful, src.feedback.not_useful,
                                                                       src.feedback.wrong)
            # The enrichment is kept only with the very vectors it was computed from.
            row.enrichment, row.enriched_at = (ln.enrichment, ln.enriched_at) if plan.reused else ({}, None)
            rows.append(row)
        repo.add_memories(s, rows)
        for ln, row in zip(plan.lines, rows):  # after the insert: these point at rows of the same batch
            row.merged_into = id_map.get(ln.memory.merged_into) if ln.memory.merged_into else None
            row.superseded_by = id_map.get(ln.memory.superseded_by) if ln.memory.superseded_by else None
            for v in ln.versions:
                repo.add_imported_version(s, row.id, v.version, v.snapshot, v.reason, v.created_at)
        if plan.reused:  # otherwise enrichment links them again from this server's vectors
            self.write_graph(s, tenant_id, cube_id, plan, id_map)
        s.flush()
        active = [(r.vec_id, i) for i, r in enumerate(rows) if r.status == "active"]
        enriched = [r.vec_id for r in rows if r.status == "active" and r.enriched_at is not None]
        if active:
            vec_ids, vecs = [a[0] for a in active], plan.vecs[[a[1] for a in active]]

            def index() -> None:
                self.indexes.add(cube_id, vec_ids, vecs, new=True)
                if enriched:  # SPLADE and window vectors cost seconds per hundred memories: not in the request
                    self.indexes.defer(cube_id, len(enriched), lambda: self._index_fine(cube_id, enriched))

            tx.after_commit.append(index)
        return rows

    @staticmethod
    def write_graph(s: Session, tenant_id: uuid.UUID, cube_id: uuid.UUID, plan: Plan,
                     id_map: dict[uuid.UUID, uuid.UUID]) -> None:
        edges = [(id_map[e.source_id], id_map[e.target_id], e.type, e.weight) for e in plan.edges]
        for start in range(0, len(edges), ROWS_PER_INSERT):  # one INSERT holds at most 65,535 parameters
            graph_repo.add_edges(s, cube_id, edges[start:start + ROWS_PER_INSERT])
        snap_repo.add_entities(s, tenant_id, cube_id, [(e.key, e.name, e.kind, e.mentions,
                                                        [id_map[m] for m in e.memory_ids]) for e in plan.entities])

    def _index_fine(self, cube_id: uuid.UUID, vec_ids: Sequence[int]) -> None:
        """Fine indexes of memories that arrive already enriched: what enrichment would index for them (their
        text and session windows), without linking them again (their edges and entities came with them)."""
        wanted = set(vec_ids)
        windows: list[Window] = []
        texts: list[tuple[int, str]] = []
        with self.sessions() as s:
            mems = repo.active_by_vec_ids(s, list(wanted)).values()
            sessions: dict[str, tuple[list[Memory], dict[uuid.UUID, int]]] = {}
            for m in sorted(mems, key=lambda m: m.vec_id):
                texts.append((m.vec_id, indexed_text(m.content, m.meta)))
                if m.session_id is None:
                    windows.append(window([m], 0))
                    continue
                if m.session_id not in sessions:
                    ordered = repo.session_neighbours(s, cube_id, m.session_id)
                    sessions[m.session_id] = ordered, {o.id: i for i, o in enumerate(ordered)}
                ordered, position = sessions[m.session_id]
                windows.append(window(ordered, position[m.id]))
        self.indexes.fine.upsert(cube_id, texts, windows)
        self.indexes.graphs.invalidate(cube_id)

    def _write_activations(self, tx: Tx, tenant_id: uuid.UUID, cube_id: uuid.UUID, plan: Plan,
                           server_fp: str | None, written: list[Path]) -> int:
        """Caches of this server's model come with their KV file, on the disk tier; the others are kept as
        'stale' rows (their text and tokens), rebuilt on demand by creating the activation again."""
        rows: list[Activation | Adapter] = []
        adopt: list[tuple[uuid.UUID, tuple[int, ...], int]] = []
        stale = 0
        for a in plan.activations:
            new_id = uuid.uuid4()
            ids = unpack_tokens(base64.b64decode(a.token_ids))
            usable = a.file is not None and a.fingerprint == server_fp
            nbytes = 0
            if usable and a.file is not None:
                path = disk_path(self.settings.activation_dir, a.fingerprint, new_id)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(plan.files[a.file])
                written.append(path)
                nbytes = path.stat().st_size
                adopt.append((new_id, ids, a.hits))
            else:
                stale += 1
            rows.append(Activation(
                id=new_id, tenant_id=tenant_id, cube_id=cube_id, model_id=a.model_id, fingerprint=a.fingerprint,
                token_hash=a.token_hash, tokens=a.tokens, token_ids=pack_tokens(ids), source=a.source,
                prefix_text=a.prefix_text, nbytes=nbytes, tier="disk" if usable else None, precision=a.precision,
                status="active" if usable else "stale", hits=a.hits, created_at=a.created_at,
                last_used_at=a.created_at,
            ))
        snap_repo.add_rows(tx.session, rows)
        if adopt:
            def register() -> None:
                store = self.activation.engine().store
                for new_id, ids, hits in adopt:
                    store.register(new_id, tenant_id, cube_id, ids, utcnow().timestamp(), hits)
                store.enforce()

            tx.after_commit.append(register)
        return stale

    def _write_adapters(self, s: Session, tenant_id: uuid.UUID, cube_id: uuid.UUID, plan: Plan,
                        principal: Principal, written: list[Path]) -> None:
        """Adapter rows and their content-addressed files (a file that was not there yet goes to ``written``,
        removed if the transaction fails)."""
        rows: list[Activation | Adapter] = []
        for ad in plan.adapters:
            self.adapter_files.put(plan.files[f"adapters/{ad.sha256}.safetensors"], written)
            rows.append(Adapter(
                tenant_id=tenant_id, cube_id=cube_id, name=ad.name, version=ad.version,
                base_fingerprint=ad.base_fingerprint, base_model=ad.base_model, rank=ad.rank, alpha=ad.alpha,
                target_modules=ad.target_modules, sha256=ad.sha256, size_bytes=ad.size_bytes, source="import",
                status="active", created_by=str(principal.key_id), metrics=ad.metrics, created_at=ad.created_at,
            ))
        snap_repo.add_rows(s, rows)
