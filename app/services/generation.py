"""Generation with the local model: a cube's KV cache reused when its prefix matches (activation memory) and
LoRA adapters attached (parametric memory)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from typing import cast

from sqlalchemy.orm import Session, sessionmaker

from app.activation.fingerprint import unpack_tokens
from app.activation.generate import generate
from app.activation.model import CausalLM, HFCausalLM
from app.config import Settings
from app.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from app.memory.access import require_cube
from app.models import Activation
from app.parametric.attach import effective_fingerprint
from app.parametric.validate import LoraSpec
from app.principal import Principal
from app.repositories import activations as repo
from app.repositories import adapters as adapters_repo
from app.schemas.activation import GenerateRequest, GenerateResponse
from app.services.activation import ActivationService


class GenerationService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], activation: ActivationService) -> None:
        self.settings = settings
        self.sessions = sessions
        self.activation = activation

    def _adapters(
        self, principal: Principal, tenant_id: uuid.UUID, adapter_ids: Sequence[uuid.UUID], model: CausalLM
    ) -> tuple[tuple[str, LoraSpec], ...]:
        """(sha256, spec) of the requested adapters, each the caller's, active, and built for this model."""
        if not adapter_ids:
            return ()
        if len(adapter_ids) > self.activation.adapter_slots.capacity:
            raise InvalidInput(
                f"at most {self.activation.adapter_slots.capacity} adapters at once",
                {"field": "adapter_ids", "limit": self.activation.adapter_slots.capacity},
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
        self.activation.reconcile()
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
        engine = self.activation.engine()
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
        with engine.lock.hold(tenant_id):
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
            with self.activation.adapter_slots.active(hf, adapters) if adapters else nullcontext():
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
        self.activation.persist(engine, engine.store.changes(), used)
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
