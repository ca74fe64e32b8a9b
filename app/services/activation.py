"""Activation memory use cases: build a cube's KV cache, list and delete them, and generate reusing them.

The model and the tiered store start on the first request that needs them, never at service start: most
processes (and tests) never generate, and the model costs memory and a second or more to load.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from sqlalchemy.orm import Session, sessionmaker

from app.activation import kv
from app.activation.fingerprint import pack_tokens, token_hash, unpack_tokens
from app.activation.generate import generate, prefill
from app.activation.model import CausalLM, HFCausalLM, ModelSpec, load_model
from app.activation.store import TIERS, Budgets, Change, TieredKVStore, disk_path
from app.config import Settings
from app.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from app.models import Activation
from app.models.base import utcnow
from app.parametric.attach import AdapterSlots, effective_fingerprint
from app.parametric.files import AdapterFiles
from app.parametric.validate import LoraSpec
from app.repositories import activations as repo
from app.repositories import adapters as adapters_repo
from app.repositories import audit
from app.schemas.activation import (
    ActivationCreate,
    ActivationList,
    ActivationOut,
    ActivationStats,
    GenerateRequest,
    GenerateResponse,
    ModelInfo,
    TierStats,
)
from app.schemas.memories import SearchRequest
from app.services.base import Principal, Transactor, Tx
from app.services.cubes import require_cube
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
    lock: threading.Lock
    """One forward pass at a time: on a few CPU cores two at once only thrash."""


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
        self._reconcile()
        model = self.loader(self.spec())
        s = self.settings
        precision = kv.resolve_precision(s.activation_precision, model.dtype)
        store = TieredKVStore(
            root=s.activation_dir,
            fingerprint=model.fingerprint.key,
            budgets=Budgets(s.activation_gpu_bytes, s.activation_cpu_bytes, s.activation_disk_bytes),
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
        engine = Engine(model, store, threading.Lock())
        self._persist(engine, store.changes())
        return engine

    def _reconcile(self) -> None:
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

    def _persist(self, engine: Engine, changes: Sequence[Change], used: uuid.UUID | None = None) -> None:
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

    def create(self, principal: Principal, cube_id: uuid.UUID, body: ActivationCreate) -> ActivationOut:
        tenant_id = principal.require_cube(cube_id, "write")
        self._reconcile()
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
        engine = self.engine()
        model = engine.model
        source, text = self._prefix_text(principal, tenant_id, cube_id, body, model)
        ids = model.encode(text)
        if not ids:
            raise InvalidInput("the prefix renders to no tokens", {"field": "text"})
        limit = min(self.settings.activation_max_tokens, model.max_positions - 1)
        if len(ids) > limit:
            raise PayloadTooLarge(
                f"the prefix is {len(ids)} tokens; the limit is {limit}", {"tokens": len(ids), "limit": limit}
            )
        fingerprint = model.fingerprint
        digest = token_hash(ids)
        # Under the engine lock: one build at a time, so two identical requests cannot both insert a row.
        with engine.lock:
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
            self._persist(engine, [c for c in engine.store.changes() if c.id != new_id])
        return result

    def list(self, principal: Principal, cube_id: uuid.UUID) -> ActivationList:
        tenant_id = principal.require_cube(cube_id, "read")
        self._reconcile()
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
            return ActivationList(activations=[self._out(r) for r in repo.in_cube(s, cube_id)])

    def delete(self, principal: Principal, activation_id: uuid.UUID) -> ActivationOut:
        tenant_id = principal.require_tenant()
        self._reconcile()

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

    def stats(self, principal: Principal) -> ActivationStats:
        """Tenant-wide usage and counters, so only a key of the whole tenant sees them."""
        tenant_id = principal.require_unscoped("read")
        self._reconcile()
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

    def _adapters(
        self, principal: Principal, tenant_id: uuid.UUID, adapter_ids: Sequence[uuid.UUID], model: CausalLM
    ) -> tuple[tuple[str, LoraSpec], ...]:
        """(sha256, spec) of the requested adapters, each the caller's, active, and built for this model."""
        if not adapter_ids:
            return ()
        if len(adapter_ids) > self.adapter_slots.capacity:
            raise InvalidInput(
                f"at most {self.adapter_slots.capacity} adapters at once",
                {"field": "adapter_ids", "limit": self.adapter_slots.capacity},
            )
        if not isinstance(model, HFCausalLM):
            raise InvalidInput("adapters need a transformers model", {"field": "adapter_ids"})
        with self.sessions() as s:
            rows = adapters_repo.many_for_tenant(s, tenant_id, adapter_ids)
        found: dict[str, LoraSpec] = {}
        for adapter_id in dict.fromkeys(adapter_ids):
            row = rows.get(adapter_id)
            # An adapter of a cube outside a scoped key's grant does not exist for it (nor does its cube id).
            if row is None or (principal.cube_ids is not None and row.cube_id not in principal.cube_ids):
                raise NotFound("adapter", adapter_id)
            if row.status != "active":
                raise Conflict(f"adapter {adapter_id} is deleted; restore it first", {"status": row.status})
            if row.base_fingerprint != model.fingerprint.key:
                raise Conflict(
                    f"adapter {adapter_id} was made for another base model (fingerprint "
                    f"{row.base_fingerprint[:12]}); this server runs {model.fingerprint.model_id!r}",
                    {"adapter_fingerprint": row.base_fingerprint, "model_fingerprint": model.fingerprint.key},
                )
            found[row.sha256] = LoraSpec(
                rank=row.rank, alpha=row.alpha, target_modules=list(row.target_modules), base_model=row.base_model
            )
        return tuple(found.items())

    def generate(self, principal: Principal, body: GenerateRequest) -> GenerateResponse:
        tenant_id = principal.require_tenant()
        principal.require_permission("read")
        self._reconcile()
        row: Activation | None = None
        with self.sessions() as s:
            if body.cube_id is not None:
                principal.require_cube(body.cube_id, "read")
                require_cube(s, tenant_id, body.cube_id)
            if body.activation_id is not None:
                row = repo.for_tenant(s, tenant_id, body.activation_id)
                if row is None or (body.cube_id is not None and row.cube_id != body.cube_id):
                    raise NotFound("activation", body.activation_id)
                principal.require_object(row.cube_id, "read", "activation", body.activation_id)
        if body.max_new_tokens > self.settings.activation_max_new_tokens:
            raise InvalidInput(
                f"max_new_tokens is over the limit of {self.settings.activation_max_new_tokens}",
                {"field": "max_new_tokens", "limit": self.settings.activation_max_new_tokens},
            )
        engine = self.engine()
        model = engine.model
        fp = model.fingerprint
        adapters = self._adapters(principal, tenant_id, body.adapter_ids or [], model)
        # The cache key includes the adapters: a cache built without them is never reused with them.
        key = effective_fingerprint(fp.key, [sha for sha, _ in adapters])
        if row is not None and row.fingerprint != fp.key:
            raise Conflict(
                f"activation {row.id} was computed by model {row.model_id!r} "
                f"(fingerprint {row.fingerprint[:12]}), "
                f"but this server runs {fp.model_id!r} in {fp.dtype} (fingerprint {fp.key[:12]}); "
                "its KV cache "
                "cannot be used with another model, dtype or tokenizer. Create the activation again.",
                {
                    "activation_fingerprint": row.fingerprint,
                    "model_fingerprint": fp.key,
                    "activation_model_id": row.model_id,
                    "model_id": fp.model_id,
                    "model_dtype": fp.dtype,
                },
            )
        if row is not None and row.status != "active":
            raise Conflict(
                f"activation {row.id} was evicted from every tier; create it again", {"status": row.status}
            )
        prefix = list(unpack_tokens(row.token_ids)) if row is not None else []
        ids = prefix + model.encode(model.chat_user_turn(body.prompt) if body.chat else body.prompt)
        if len(ids) + body.max_new_tokens > model.max_positions:
            raise PayloadTooLarge(
                f"prompt ({len(ids)} tokens) plus max_new_tokens is over the model's "
                f"{model.max_positions} positions",
                {"prompt_tokens": len(ids), "limit": model.max_positions},
            )
        used: uuid.UUID | None = None
        tier: str | None = None
        with engine.lock:
            started = time.perf_counter()
            reused = None
            reused_tokens = 0
            if body.use_activation and key == fp.key:
                target: tuple[uuid.UUID, int] | None = None
                if row is not None:
                    target = (row.id, min(len(prefix), len(ids) - 1))
                elif body.cube_id is not None or not principal.scoped:
                    # A scoped key names its cube: reuse never reaches into cubes outside its grant.
                    found = engine.store.match(
                        tenant_id, body.cube_id, ids, self.settings.activation_min_reuse_tokens
                    )
                    target = (found[0].id, found[1]) if found is not None else None
                checkout = engine.store.checkout(*target) if target is not None and target[1] > 0 else None
                if checkout is not None and target is not None:
                    used, tier, reused, reused_tokens = (
                        target[0],
                        checkout.tier,
                        checkout.layers,
                        checkout.tokens,
                    )
                else:
                    engine.store.miss(tenant_id)
            # ``_adapters`` only returns adapters for an HFCausalLM.
            hf = cast(HFCausalLM, model)
            with self.adapter_slots.active(hf, adapters) if adapters else nullcontext():
                result = generate(
                    model,
                    ids,
                    reused,
                    reused_tokens,
                    body.max_new_tokens,
                    started=started,
                    temperature=body.temperature,
                    seed=body.seed,
                )
            del reused
        self._persist(engine, engine.store.changes(), used)
        return GenerateResponse(
            text=result.text,
            token_ids=result.token_ids,
            finish_reason=result.finish_reason,
            model_id=fp.model_id,
            fingerprint=key,
            adapter_ids=list(body.adapter_ids or []),
            activation_id=used,
            tier_hit=tier,
            reused_tokens=reused_tokens,
            prefill_tokens=result.prefill_tokens,
            prompt_tokens=len(ids),
            ttft_ms=result.ttft_ms,
            total_ms=result.total_ms,
        )
