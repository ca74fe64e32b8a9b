"""Parametric memory use cases: upload, list, soft-delete and restore LoRA adapters, and distill one from a cube.

Postgres is the truth about which adapter exists; its file is content-addressed under the data dir and only
written once the adapter passed every check, so a rejected upload leaves nothing behind.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.activation.model import HFCausalLM, load_model
from app.config import Settings
from app.errors import ConfigurationError, Conflict, InvalidInput, NotFound
from app.memory.access import require_cube
from app.memory.filters import memory_filter
from app.models import Adapter
from app.models.base import utcnow
from app.parametric import distill
from app.parametric.attach import base_info
from app.parametric.files import AdapterFiles
from app.parametric.validate import BaseModelInfo, adapter_config, validate_adapter
from app.principal import Principal
from app.repositories import adapters as repo
from app.repositories import audit
from app.repositories import jobs as jobs_repo
from app.repositories import memories as memories_repo
from app.schemas.adapters import AdapterList, AdapterOut, DistillRequest
from app.schemas.jobs import JobOut
from app.services.activation import ActivationService, model_spec
from app.services.base import Transactor, Tx
from app.services.jobs import JobCancelled, JobRun, JobService
from app.services.quotas import reserve

MIN_MEMORIES = 3


def adapter_out(row: Adapter) -> AdapterOut:
    return AdapterOut(
        id=row.id, cube_id=row.cube_id, name=row.name, version=row.version, base_model=row.base_model,
        base_fingerprint=row.base_fingerprint, rank=row.rank, alpha=row.alpha,
        target_modules=list(row.target_modules), sha256=row.sha256, size_bytes=row.size_bytes, source=row.source,
        status=row.status, created_by=row.created_by, job_id=row.job_id, metrics=row.metrics or {},
        created_at=row.created_at, deleted_at=row.deleted_at,
    )


def register_adapter(s: Session, files: AdapterFiles, base: BaseModelInfo, settings: Settings, *,
                     tenant_id: uuid.UUID, cube_id: uuid.UUID, name: str, config: bytes | dict[str, Any],
                     tensors: bytes, source: str, created_by: str | None, written: list[Path],
                     job_id: uuid.UUID | None = None, metrics: dict[str, Any] | None = None) -> Adapter:
    """Validate an adapter completely (413, 422, then 409 for another base model), then store its file (added
    to ``written`` when new: the caller removes it if its transaction fails) and add its row as the next
    version of ``name``, within the tenant's adapter quota (403). The caller owns the transaction and audits."""
    spec = validate_adapter(config, tensors, base, settings.adapter_max_bytes)
    reserve(s, settings, tenant_id, "adapter_bytes", len(tensors))
    sha = files.put(tensors, written)
    return repo.add(s, Adapter(
        tenant_id=tenant_id, cube_id=cube_id, name=name, version=repo.next_version(s, cube_id, name),
        base_fingerprint=base.fingerprint, base_model=base.model_id, rank=spec.rank, alpha=spec.alpha,
        target_modules=spec.target_modules, sha256=sha, size_bytes=len(tensors), source=source, status="active",
        created_by=created_by, job_id=job_id, metrics=metrics or {}, created_at=utcnow(),
    ))


def remove(written: list[Path]) -> None:
    """Adapter files written for a transaction that did not commit (emptied once one commits)."""
    for path in written:
        path.unlink(missing_ok=True)
    written.clear()


def distill_memories(s: Session, cube_id: uuid.UUID, body: DistillRequest) -> list[str]:
    """The texts a distillation trains on: the cube's active plaintext memories that match the filter."""
    return memories_repo.active_contents(s, cube_id, memory_filter(body.memory_filter, status="active"))


class AdapterService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], tx: Transactor, jobs: JobService,
                 activation: ActivationService) -> None:
        self.settings = settings
        self.sessions = sessions
        self.tx = tx
        self.jobs = jobs
        self.activation = activation
        self.files = AdapterFiles(settings.adapter_dir)
        self._base: BaseModelInfo | None = None

    def base(self) -> BaseModelInfo:
        """The loaded model's id, fingerprint and Linear shapes (loads the model on first use)."""
        if self._base is None:
            model = self.activation.engine().model
            if not isinstance(model, HFCausalLM):
                raise ConfigurationError("adapters need a transformers model (activation_model)")
            self._base = base_info(model)
        return self._base

    def upload(self, principal: Principal, cube_id: uuid.UUID, name: str, config: bytes,
               tensors: bytes) -> AdapterOut:
        tenant_id = principal.require_cube(cube_id, "write")
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
        creator = str(principal.key_id)
        written: list[Path] = []

        def work(tx: Tx) -> AdapterOut:
            require_cube(tx.session, tenant_id, cube_id)
            tx.after_commit.append(written.clear)  # committed: the row owns the file now
            row = register_adapter(tx.session, self.files, self.base(), self.settings,
                                   tenant_id=tenant_id, cube_id=cube_id, name=name, config=config, tensors=tensors,
                                   source="upload", created_by=creator, written=written)
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="adapter.upload",
                         object_type="adapter", object_id=row.id,
                         details={"cube_id": str(cube_id), "name": name, "version": row.version,
                                  "sha256": row.sha256})
            return adapter_out(row)

        try:
            return self.tx.run(principal, None, AdapterOut, work)
        finally:
            remove(written)

    def list(self, principal: Principal, cube_id: uuid.UUID, include_deleted: bool) -> AdapterList:
        tenant_id = principal.require_cube(cube_id, "read")
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
            return AdapterList(adapters=[adapter_out(r) for r in repo.in_cube(s, cube_id, include_deleted)])

    def _visible(self, s: Session, principal: Principal, adapter_id: uuid.UUID, need: str) -> Adapter:
        """The tenant's adapter, once the key may ``need`` on its cube; anything else is a 404."""
        row = repo.for_tenant(s, principal.require_tenant(), adapter_id, lock=need != "read")
        if row is None:
            raise NotFound("adapter", adapter_id)
        principal.require_cube(row.cube_id, need)
        return row

    def get(self, principal: Principal, adapter_id: uuid.UUID) -> AdapterOut:
        with self.sessions() as s:
            return adapter_out(self._visible(s, principal, adapter_id, "read"))

    def _set_status(self, principal: Principal, adapter_id: uuid.UUID, status: str) -> AdapterOut:
        def work(tx: Tx) -> AdapterOut:
            row = self._visible(tx.session, principal, adapter_id, "write")
            if row.status == status:
                raise Conflict(f"adapter {adapter_id} is already {status}", {"status": status})
            if status == "active":
                reserve(tx.session, self.settings, row.tenant_id, "adapter_bytes", row.size_bytes)
            row.status, row.deleted_at = status, (utcnow() if status == "deleted" else None)
            audit.record(tx.session, tenant_id=row.tenant_id, key_id=principal.key_id,
                         action="adapter.delete" if status == "deleted" else "adapter.restore",
                         object_type="adapter", object_id=row.id, details={"cube_id": str(row.cube_id)})
            return adapter_out(row)

        return self.tx.run(principal, None, AdapterOut, work)

    def delete(self, principal: Principal, adapter_id: uuid.UUID) -> AdapterOut:
        """Soft: the row and file stay, generation refuses it, ``restore`` brings it back."""
        return self._set_status(principal, adapter_id, "deleted")

    def restore(self, principal: Principal, adapter_id: uuid.UUID) -> AdapterOut:
        return self._set_status(principal, adapter_id, "active")

    def distill(self, principal: Principal, cube_id: uuid.UUID, body: DistillRequest) -> JobOut:
        """Queue a ``distill`` job (the lifecycle's fuse-into-parametric asks for the same kind and params)."""
        tenant_id = principal.require_cube(cube_id, "write")
        with self.sessions() as s:
            require_cube(s, tenant_id, cube_id)
            found = len(distill_memories(s, cube_id, body))
        if found < MIN_MEMORIES:
            raise InvalidInput(f"{found} active memories match; distillation needs at least {MIN_MEMORIES}",
                               {"field": "memory_filter", "memories": found})
        return self.jobs.request(principal, cube_id, "distill", body.model_dump(mode="json", exclude_none=True))


class DistillJob:
    """The ``distill`` job handler: trains on its own copy of the model, so serving is never disturbed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.files = AdapterFiles(settings.adapter_dir)

    def run(self, run: JobRun) -> dict[str, Any]:
        s_ = self.settings
        body = DistillRequest.model_validate(run.params)
        with run.sessions() as s:
            texts = distill_memories(s, run.cube_id, body)
        if len(texts) < MIN_MEMORIES:
            raise InvalidInput(f"{len(texts)} active memories match; distillation needs at least {MIN_MEMORIES}")
        cfg = distill.DistillSettings(
            rank=body.rank or s_.distill_rank, steps=body.steps or s_.distill_steps,
            learning_rate=body.learning_rate or s_.distill_learning_rate, batch_size=s_.distill_batch_size,
            max_tokens=s_.distill_max_tokens)
        lm = load_model(model_spec(s_))
        base = base_info(lm)
        trained, held_out = distill.split(texts, s_.distill_holdout, cfg.seed)
        every = max(1, cfg.steps // 20)

        def step_done(step: int, loss: float) -> bool:
            """Progress now and then; the cancel check each step (a read is cheap next to a training step)."""
            if step % every == 0 or step == cfg.steps:
                run.progress(0.8 * step / cfg.steps)
            return not run.cancelled()

        try:
            result = distill.train(lm, trained, cfg, step_done)
        except distill.Cancelled as exc:
            raise JobCancelled() from exc
        metrics: dict[str, Any] = {
            "train_memories": len(trained), "held_out_memories": len(held_out), "steps": cfg.steps,
            "learning_rate": cfg.learning_rate, "train_seconds": round(result.seconds, 3),
            "first_loss": round(result.losses[0], 4), "final_loss": round(result.losses[-1], 4),
            **distill.evaluate(lm, trained, held_out),
        }
        from safetensors.torch import save

        data = save(result.tensors)
        written: list[Path] = []
        try:
            return self._register(run, body, base, adapter_config(result.spec), data, metrics, written)
        finally:
            remove(written)

    def _register(self, run: JobRun, body: DistillRequest, base: BaseModelInfo, config: dict[str, Any],
                  data: bytes, metrics: dict[str, Any], written: list[Path]) -> dict[str, Any]:
        """The adapter's file and row, under the job's row lock."""
        s_ = self.settings
        with run.sessions.begin() as s:
            # Under the job's row lock: a cancel either lands before (no adapter) or finds the job done.
            job = jobs_repo.get_job(s, run.job_id, lock=True)
            if job is None or job.status == "cancelled":
                raise JobCancelled()
            row = register_adapter(
                s, self.files, base, s_, tenant_id=run.tenant_id, cube_id=run.cube_id,
                name=body.name, config=config, tensors=data, source="distill",
                created_by=f"job:{run.job_id}", written=written, job_id=run.job_id, metrics=metrics)
            audit.record(s, tenant_id=run.tenant_id, key_id=None, action="adapter.distill", object_type="adapter",
                         object_id=row.id, details={"cube_id": str(run.cube_id), "job_id": str(run.job_id),
                                                    "version": row.version})
            out = {"adapter_id": str(row.id), "name": row.name, "version": row.version, "sha256": row.sha256,
                   "size_bytes": row.size_bytes, "metrics": metrics}
            job.status, job.result, job.progress = "done", out, 1.0
            job.finished_at = job.updated_at = utcnow()
        written.clear()  # committed: the row owns the file now
        return out

