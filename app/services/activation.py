"""Activation memory use cases: build a cube's KV cache, list and delete them, and generate reusing them.

The model and the tiered store start on the first request that needs them, never at service start: most
processes (and tests) never generate, and the model costs memory and a second or more to load.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from sqlalchemy.orm import Session, sessionmaker

from app.activation import kv
from app.activation.fingerprint import pack_tokens, token_hash, unpack_tokens
from app.activation.generate import prefill
from app.activation.model import CausalLM, ModelSpec, load_model
from app.activation.store import TIERS, Budgets, Change, Counters, TieredKVStore, disk_path
from app.config import Settings
from app.errors import InvalidInput, NotFound, PayloadTooLarge
from app.fairness import FairLock
from app.memory.access import require_cube
from app.models import Activation
from app.models.base import utcnow
from app.parametric.attach import AdapterSlots
from app.parametric.files import AdapterFiles
from app.principal import Principal
from app.repositories import activations as repo
from app.repositories import audit
from app.schemas.activation import (
    ActivationCreate,
    ActivationList,
    ActivationOut,
    ActivationStats,
    ModelInfo,
    TierStats,
)
from app.schemas.memories import SearchRequest
from app.services.base import Transactor, Tx
from app.services.quotas import reserve
from app.services.search import SearchService

MEMORY_PREAMBLE = "You are a helpful assistant. Here is what you remember, one memory per line:"


def render_memories(contents: Sequence[str]) -> str:
    """The plain text of a memory prefix; the model's chat template wraps it as a system turn."""
    lines = "\n".join("- " + " ".join(c.split()) for c in contents)
    return f"{MEMORY_PREAMBLE}\n{lines}"


def model_spec(settings: Settings) -> ModelSpec:
    """The configured causal LM (distillation jobs load their own copy of the same one)."""
    return ModelSpec(
        name=settings.activation_model,
        models_dir=settings.models_dir,
        device=settings.activation_device,
        dtype=settings.activation_dtype,
        threads=settings.activation_torch_threads,
    )


@dataclass
class Engine:
    model: CausalLM
    store: TieredKVStore
    lock: FairLock
    """One forward pass at a time (on a few CPU cores two at once only thrash), tenants served round-robin."""


class ActivationService:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        tx: Transactor,
        search: SearchService,
        loader: Callable[[ModelSpec], CausalLM] = load_model,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.tx = tx
        self.search = search
        self.loader = loader
        self._engine: Engine | None = None
        self._start_lock = threading.Lock()
        self._reconcile_lock = threading.Lock()
        self._reconciled = False
        self.adapter_slots = AdapterSlots(AdapterFiles(settings.adapter_dir), settings.adapter_lru_size)

    # -- lifecycle -----------------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def spec(self) -> ModelSpec:
        return model_spec(self.settings)

    def engine(self) -> Engine:
        """The model and store, loaded on first use (once, even under concurrent first requests)."""
        if self._engine is None:
            with self._start_lock:
                if self._engine is None:
                    self._engine = self._start()
        return self._engine

    def _start(self) -> Engine:
        self.reconcile()
        model = self.loader(self.spec())
        s = self.settings
        precision = kv.resolve_precision(s.activation_precision, model.dtype)
        store = TieredKVStore(
            root=s.activation_dir,
            fingerprint=model.fingerprint.key,
            budgets=Budgets(s.activation_gpu_bytes, s.activation_cpu_bytes, s.activation_disk_bytes,
                            s.activation_tenant_share),
            precision=precision,
            native=model.dtype,
            device=model.device,
        )
        # Adopt what survived on disk; rows whose file is gone are marked evicted.
        with self.sessions.begin() as session:
            for row in repo.active(session, model.fingerprint.key):
                last = (row.last_used_at or row.created_at).timestamp()
                if not store.register(
                    row.id, row.tenant_id, row.cube_id, unpack_tokens(row.token_ids), last, row.hits
                ):
                    row.status, row.tier = "evicted", None
        store.sweep()
        store.enforce()
        engine = Engine(model, store, FairLock())
        self.persist(engine, store.changes())
        return engine

    def reconcile(self) -> None:
        """After a restart the memory tiers are empty: rows left there are on disk, or gone.

        Cheap (no model), so listing and stats are right before anything is loaded.
        """
        if self._reconciled:
            return
        with self._reconcile_lock:
            if self._reconciled:
                return
            with self.sessions.begin() as session:
                for row in repo.in_memory_tiers(session):
                    path = disk_path(self.settings.activation_dir, row.fingerprint, row.id)
                    if path.exists():
                        row.tier, row.nbytes = "disk", path.stat().st_size
                    else:
                        row.status, row.tier = "evicted", None
            self._reconciled = True

    def persist(self, engine: Engine, changes: Sequence[Change], used: uuid.UUID | None = None) -> None:
        """Write tier moves, evictions and a use to the metadata rows (bookkeeping, in its own commit)."""
        if not changes and used is None:
            return
        with self.sessions.begin() as session:
            for change in changes:
                row = repo.get(session, change.id)
                if row is None or row.status != "active":
                    continue
                if change.tier is None:
                    row.status, row.tier = "evicted", None
                else:
                    row.tier, row.nbytes = change.tier, change.nbytes
            if used is not None:
                row = repo.get(session, used)
                entry = engine.store.get(used)
                if row is not None:
                    row.hits = entry.hits if entry is not None else row.hits + 1
                    row.last_used_at = utcnow()

    def _out(self, row: Activation) -> ActivationOut:
        compatible = (
            (row.fingerprint == self._engine.model.fingerprint.key) if self._engine is not None else None
        )
        return ActivationOut(
            id=row.id,
            cube_id=row.cube_id,
            model_id=row.model_id,
            fingerprint=row.fingerprint,
            compatible=compatible,
            source=row.source,
            tokens=row.tokens,
            token_hash=row.token_hash,
            bytes=row.nbytes,
            tier=row.tier,
            precision=row.precision,
            status=row.status,
            hits=row.hits,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            text=row.prefix_text,
        )

    # -- use cases -----------------------------------------------------------------------------------------

    def _prefix_text(
        self,
        principal: Principal,
        tenant_id: uuid.UUID,
        cube_id: uuid.UUID,
        body: ActivationCreate,
        model: CausalLM,
    ) -> tuple[str, str]:
        if body.text is not None:
            return "text", body.text
        if body.memory_ids is not None:
            wanted = list(dict.fromkeys(body.memory_ids))
            with self.sessions() as s:
                require_cube(s, tenant_id, cube_id)
                found = repo.memories_in_cube(s, cube_id, wanted)
            for memory_id in wanted:
                if memory_id not in found:
                    raise NotFound("memory", memory_id)
            return "memories", model.chat_context(render_memories([found[m].content for m in wanted]))
        assert body.query is not None
        top_k = body.top_k or self.settings.activation_query_top_k
        hits = self.search.search(principal, SearchRequest(query=body.query, cube_ids=[cube_id], top_k=top_k))
        if not hits.results:
            raise InvalidInput("no memory of this cube matches the query", {"field": "query"})
        return "query", model.chat_context(render_memories([h.memory.content for h in hits.results]))

    def check_tokens(self, ids: Sequence[int], model: CausalLM | None) -> None:
        """The token ids of a prefix, built here or imported: some, at most the limit (and the model's context,
        when they are for ``model``), and ids of its vocabulary."""
        if not ids:
            raise InvalidInput("the prefix renders to no tokens", {"field": "text"})
        limit = self.settings.activation_max_tokens
        if model is not None:
            limit = min(limit, model.max_positions - 1)
        if len(ids) > limit:
            raise PayloadTooLarge(
                f"the prefix is {len(ids)} tokens; the limit is {limit}", {"tokens": len(ids), "limit": limit}
            )
        top = model.vocab_size if model is not None else 2**31
        if min(ids) < 0 or max(ids) >= top:
            raise InvalidInput(f"token ids must be from 0 to {top - 1}", {"field": "token_ids"})

    def create(self, principal: Principal, cube_id: uuid.UUID, body: ActivationCreate) -> ActivationOut:
        tenant_id = principal.require_cube(cube_id, "write")
        self.reconcile()
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
        engine = self.engine()
        model = engine.model
        source, text = self._prefix_text(principal, tenant_id, cube_id, body, model)
        ids = model.encode(text)
        self.check_tokens(ids, model)
        fingerprint = model.fingerprint
        digest = token_hash(ids)
        # Under the engine lock: one build at a time, so two identical requests cannot both insert a row.
        with engine.lock.hold(tenant_id):
            with self.sessions() as s:
                existing = repo.live_by_tokens(s, cube_id, fingerprint.key, digest)
                if existing is not None and engine.store.get(existing.id) is not None:
                    return self._out(existing)
                stale = existing.id if existing is not None else None
            layers = prefill(model, ids)
            new_id = uuid.uuid4()
            entry = engine.store.add(new_id, tenant_id, cube_id, ids, layers)
            del layers

            def work(tx: Tx) -> ActivationOut:
                require_cube(tx.session, tenant_id, cube_id)
                if stale is not None:
                    old = repo.get(tx.session, stale)
                    if old is not None:
                        old.status, old.tier = "evicted", None
                        tx.session.flush()
                reserve(tx.session, self.settings, tenant_id, "activation_bytes", entry.nbytes)
                now = utcnow()
                row = repo.add(
                    tx.session,
                    Activation(
                        id=new_id,
                        tenant_id=tenant_id,
                        cube_id=cube_id,
                        model_id=fingerprint.model_id,
                        fingerprint=fingerprint.key,
                        token_hash=digest,
                        tokens=len(ids),
                        token_ids=pack_tokens(ids),
                        source=source,
                        prefix_text=text,
                        nbytes=entry.nbytes,
                        tier=entry.tier,
                        precision=engine.store.precision
                        if entry.tier != "gpu"
                        else kv.dtype_name(model.dtype),
                        status="active",
                        hits=0,
                        created_at=now,
                        last_used_at=now,
                    ),
                )
                audit.record(
                    tx.session,
                    tenant_id=tenant_id,
                    key_id=principal.key_id,
                    action="activation.create",
                    object_type="activation",
                    object_id=new_id,
                    details={"cube_id": str(cube_id), "tokens": len(ids), "source": source},
                )
                return self._out(row)

            try:
                result = self.tx.run(principal, None, ActivationOut, work)
            except BaseException:
                engine.store.remove(new_id)
                raise
            self.persist(engine, [c for c in engine.store.changes() if c.id != new_id])
        return result

    def list(self, principal: Principal, cube_id: uuid.UUID) -> ActivationList:
        tenant_id = principal.require_cube(cube_id, "read")
        self.reconcile()
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
            return ActivationList(activations=[self._out(r) for r in repo.in_cube(s, cube_id)])

    def delete(self, principal: Principal, activation_id: uuid.UUID) -> ActivationOut:
        tenant_id = principal.require_tenant()
        self.reconcile()

        def work(tx: Tx) -> ActivationOut:
            row = repo.for_tenant(tx.session, tenant_id, activation_id, lock=True)
            if row is None:
                raise NotFound("activation", activation_id)
            principal.require_object(row.cube_id, "write", "activation", activation_id)
            path = disk_path(self.settings.activation_dir, row.fingerprint, row.id)
            row.status, row.tier = "deleted", None
            audit.record(
                tx.session,
                tenant_id=tenant_id,
                key_id=principal.key_id,
                action="activation.delete",
                object_type="activation",
                object_id=activation_id,
            )
            tx.after_commit.append(lambda: self._drop(activation_id, path))
            return self._out(row)

        return self.tx.run(principal, None, ActivationOut, work)

    def _drop(self, activation_id: uuid.UUID, path: Path) -> None:
        if self._engine is not None:
            self._engine.store.remove(activation_id)
        path.unlink(missing_ok=True)

    def counters(self) -> Counters:
        """The KV store's hits, misses and tier moves over every tenant; zeros until the model is loaded."""
        engine = self._engine
        return engine.store.totals() if engine is not None else Counters()

    def stats(self, principal: Principal) -> ActivationStats:
        """Tenant-wide usage and counters, so only a key of the whole tenant sees them."""
        tenant_id = principal.require_unscoped("read")
        self.reconcile()
        with self.sessions() as s:
            usage = repo.usage_by_tier(s, tenant_id)
        s_ = self.settings
        budgets = {
            "gpu": s_.activation_gpu_bytes,
            "cpu": s_.activation_cpu_bytes,
            "disk": s_.activation_disk_bytes,
        }
        engine = self._engine
        cuda = engine.store.cuda if engine is not None else torch.cuda.is_available()
        tiers = {
            t: TierStats(
                bytes=usage.get(t, (0, 0))[0],
                entries=usage.get(t, (0, 0))[1],
                budget_bytes=budgets[t],
                available=(t != "gpu" or cuda),
            )
            for t in TIERS
        }
        counters = engine.store.counters.get(tenant_id) if engine is not None else None
        model = ModelInfo(loaded=False)
        if engine is not None:
            fp = engine.model.fingerprint
            model = ModelInfo(
                loaded=True,
                model_id=fp.model_id,
                fingerprint=fp.key,
                device=str(engine.model.device),
                dtype=fp.dtype,
                precision=engine.store.precision,
            )
        return ActivationStats(
            tiers=tiers,
            hits=counters.hits if counters else 0,
            misses=counters.misses if counters else 0,
            evictions=counters.evictions if counters else 0,
            promotions=counters.promotions if counters else 0,
            demotions=counters.demotions if counters else 0,
            model=model,
        )
