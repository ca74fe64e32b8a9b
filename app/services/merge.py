"""Merging one cube into another through admission, and fusing a cube's plaintext into activation or parametric
memory (jobs)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import Conflict, InvalidInput
from app.memory.access import require_cube
from app.models.base import utcnow
from app.principal import Principal
from app.repositories import memories as repo
from app.repositories import snapshots as snap_repo
from app.schemas.activation import ActivationCreate
from app.schemas.lifecycle import FuseRequest, FuseResult, MergeRequest, MergeResult
from app.schemas.memories import MemoryBatch, MemoryIn
from app.services.activation import ActivationService, render_memories
from app.services.adapters import AdapterService
from app.services.base import Idempotency, Tx
from app.services.jobs import JobRun, JobService
from app.services.memories import MemoryService

FUSE_CANDIDATES = 500  # an activation renders at most this many memories (ActivationCreate's cap)


class MergeService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], memories: MemoryService,
                 jobs: JobService, adapters: AdapterService) -> None:
        self.settings = settings
        self.sessions = sessions
        self.memories = memories
        self.jobs = jobs
        self.adapters = adapters

    def merge(self, principal: Principal, cube_id: uuid.UUID, body: MergeRequest,
              idem: Idempotency | None = None) -> MergeResult:
        """The other cube's active memories, written here through admission (a duplicate is stored archived with
        ``merged_into``, never doubled); their vectors are reused, nothing is embedded again."""
        tenant_id = principal.require_cube(cube_id, "write")
        principal.require_cube(body.from_cube_id, "read")
        if body.from_cube_id == cube_id:
            raise InvalidInput("a cube cannot be merged into itself", {"field": "from_cube_id"})
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
            require_cube(s, tenant_id, body.from_cube_id)
            source = repo.active_memories(s, body.from_cube_id)
            items = [MemoryIn.model_validate({
                "content": m.content, "memory_type": m.memory_type, "user_id": m.user_id, "agent_id": m.agent_id,
                "session_id": m.session_id, "occurred_at": m.occurred_at, "tags": list(m.tags or []),
                "metadata": m.meta or {}, "source": m.source or {}, "importance": m.importance}) for m in source]
            vecs = (np.stack([np.frombuffer(m.embedding, dtype=np.float32) for m in source]) if source
                    else np.zeros((0, self.memories.embedder.dim), dtype=np.float32))

        def counts(batch: MemoryBatch) -> MergeResult:
            out = MergeResult(from_cube_id=body.from_cube_id, considered=len(items), admitted=0, merged=0,
                              rejected=0)
            for item in batch.admission:
                setattr(out, item.status, getattr(out, item.status) + 1)
            return out

        def record(tx: Tx, batch: MemoryBatch) -> None:
            """In the merge's own transaction: the merge joins the target cube's provenance."""
            cube = require_cube(tx.session, tenant_id, cube_id, lock=True)
            merges = [*(cube.provenance or {}).get("merged_from", []),
                      {**counts(batch).model_dump(mode="json"), "at": utcnow().isoformat()}]
            cube.provenance = {**(cube.provenance or {}), "merged_from": merges}

        if not items:
            return counts(MemoryBatch(memories=[]))
        return counts(self.memories.add_embedded(principal, cube_id, items, vecs, idem, "cube.merge", record))

    # -- fuse ------------------------------------------------------------------------------------------------
    def fuse(self, principal: Principal, cube_id: uuid.UUID, body: FuseRequest) -> FuseResult:
        """Queue the job that turns the cube's plaintext into a KV cache (``fuse_activation``) or an adapter
        (``distill``); the job's result names what it built."""
        principal.require_cube(cube_id, "write")
        if body.into == "parametric":
            return FuseResult(into=body.into, job=self.adapters.distill(principal, cube_id, body.distill_request()))
        if self.settings.redis_url:
            raise Conflict("fuse into activation builds the cache with this process's activation model; with "
                           "MEMCUBED_REDIS_URL set, jobs run on workers that have none",
                           {"into": body.into, "queue": "redis"})
        params = {"max_tokens": body.max_tokens} if body.max_tokens is not None else {}
        return FuseResult(into=body.into, job=self.jobs.request(principal, cube_id, "fuse_activation", params))


class FuseActivation:
    """Job handler: a KV cache of the cube's most important memories (importance, heat, retrievals) that fits
    the token budget, built by the activation service's own path from the chosen memory ids."""

    def __init__(self, activation: Callable[[], ActivationService]) -> None:
        self.activation = activation

    def __call__(self, run: JobRun) -> dict[str, Any]:
        service = self.activation()
        model = service.engine().model
        limit = min(run.settings.activation_max_tokens, model.max_positions - 1)
        budget = min(int(run.params.get("max_tokens") or limit), limit)
        with run.sessions() as s:
            candidates = [(m.id, m.content) for m in snap_repo.most_important(s, run.cube_id, FUSE_CANDIDATES)]

        def tokens(contents: list[str]) -> int:
            return len(model.encode(model.chat_context(render_memories(contents))))

        chosen: list[tuple[uuid.UUID, str]] = []
        used = tokens([])
        for memory_id, content in candidates:  # greedy by importance; one line costs about its own tokens
            cost = len(model.encode("- " + " ".join(content.split()))) + 1
            if used + cost <= budget:
                chosen.append((memory_id, content))
                used += cost
        while chosen and tokens([c for _, c in chosen]) > budget:  # the exact count of the rendered prefix
            chosen.pop()
        if not chosen:
            return {"activation_id": None, "memories": 0, "reason": "no active memory fits the token budget",
                    "budget": budget}
        actor = Principal(key_id=uuid.UUID(int=0), scope="tenant", tenant_id=run.tenant_id)
        out = service.create(actor, run.cube_id, ActivationCreate(memory_ids=[m for m, _ in chosen]))
        return {"activation_id": str(out.id), "memories": len(chosen), "tokens": out.tokens, "budget": budget,
                "memory_ids": [str(m) for m, _ in chosen]}
