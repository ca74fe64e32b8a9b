"""Jobs: asking for them (API), running one (claim, per-cube lock, retry with backoff), and the versioned change
every job makes to a memory.

The queue (Redis via arq, or an in-process thread in the embedded default) carries only a job id; the ``jobs``
table carries the state. Running a job twice is harmless: every change re-reads the memory under a row lock and
skips it when it is no longer in the state the job saw, so a job killed half-way is simply run again.

Each try is a ``job.run`` span (job id, kind, outcome), linked to the request that queued it when the queue
knows it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import numpy as np
from opentelemetry import trace
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import Conflict, NotFound, QuotaExceeded
from app.memory.access import require_cube
from app.models import Job
from app.models.base import utcnow
from app.principal import Principal
from app.redact import redact
from app.repositories import audit
from app.repositories import jobs as jobs_repo
from app.repositories import memories as memories_repo
from app.schemas.jobs import JobList, JobOut
from app.services.base import Transactor, Tx

log = logging.getLogger(__name__)


class IndexSink(Protocol):
    """Where a job's index changes go: ``DerivedIndexes`` in-process, a Redis notice from a worker process."""

    def add(self, cube_id: uuid.UUID, vec_ids: Sequence[int], vecs: np.ndarray) -> None: ...

    def remove(self, cube_id: uuid.UUID, vec_ids: Sequence[int]) -> None: ...


def job_out(j: Job) -> JobOut:
    return JobOut(id=j.id, tenant_id=j.tenant_id, cube_id=j.cube_id, kind=j.kind, status=j.status, trigger=j.trigger,
                  attempts=j.attempts, max_attempts=j.max_attempts, error=j.error, progress=round(j.progress, 4),
                  params=j.params or {}, result=j.result or {}, created_at=j.created_at, started_at=j.started_at,
                  finished_at=j.finished_at, updated_at=j.updated_at)


@dataclass
class JobRun:
    """What a job handler gets: the job, the database, the index sink, and progress/pacing helpers."""

    job_id: uuid.UUID
    tenant_id: uuid.UUID
    cube_id: uuid.UUID
    kind: str
    params: dict[str, Any]
    settings: Settings
    sessions: sessionmaker[Session]
    sink: IndexSink
    embed: Callable[[list[str]], np.ndarray]
    result: dict[str, Any] = field(default_factory=dict)

    def progress(self, fraction: float) -> None:
        with self.sessions.begin() as s:
            jobs_repo.set_progress(s, self.job_id, max(0.0, min(1.0, fraction)))

    def cancelled(self) -> bool:
        with self.sessions() as s:
            job = jobs_repo.get_job(s, self.job_id)
            return job is None or job.status == "cancelled"

    def batch(self, size: int) -> int:
        """Changes per transaction; one when paced, so that a stop between two changes keeps the first."""
        return 1 if self.settings.job_step_delay_ms > 0 else size

    def pace(self) -> None:
        """Pause after a change when configured (lets tests stop a worker in the middle of a job)."""
        if self.settings.job_step_delay_ms > 0:
            time.sleep(self.settings.job_step_delay_ms / 1000)


Handler = Callable[[JobRun], dict[str, Any]]

INTERRUPTIBLE = ("distill",)
IDS_CAP = 200  # memory ids a job's result lists per change kind (its counts are exact)
"""Job kinds that check ``JobRun.cancelled`` between steps, so a running one can be cancelled."""


class JobCancelled(Exception):
    """Raised by a handler that saw its job cancelled: it stops, leaving nothing half-made."""


@dataclass(frozen=True)
class Outcome:
    """How one try ended: done, failed, skipped (nothing to do), retry (after ``delay``) or locked (cube busy)."""

    status: str
    delay: float = 0.0


class JobExecutor:
    """Runs one job id to the end of one try. Used by the arq worker and by the in-process runner alike."""

    def __init__(self, settings: Settings, engine: Engine, sessions: sessionmaker[Session], sink: IndexSink,
                 embed: Callable[[list[str]], np.ndarray], handlers: dict[str, Handler],
                 tracer: trace.Tracer | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self.sink = sink
        self.embed = embed
        self.handlers = handlers
        self.tracer = tracer or trace.get_tracer(__name__)

    def run(self, job_id: uuid.UUID, links: Sequence[trace.Link] = ()) -> Outcome:
        """One try, in a span linked to ``links`` (the requests that queued the job)."""
        with self.tracer.start_as_current_span("job.run", links=links,
                                               attributes={"memcubed.job.id": str(job_id)}) as span:
            outcome = self._try(job_id, span)
            span.set_attribute("memcubed.job.outcome", outcome.status)
            if outcome.status == "failed":
                span.set_status(trace.StatusCode.ERROR)
            return outcome

    def _try(self, job_id: uuid.UUID, span: trace.Span) -> Outcome:
        with self.sessions() as s:
            job = jobs_repo.get_job(s, job_id)
            if job is None or job.status not in jobs_repo.UNFINISHED:
                return Outcome("skipped")
            cube_id = job.cube_id
            span.set_attribute("memcubed.job.kind", job.kind)
        with self.engine.connect() as conn:
            if not jobs_repo.try_cube_lock(conn, cube_id):
                return Outcome("locked", 1.0)
            conn.commit()
            try:
                return self._run_locked(job_id)
            finally:
                jobs_repo.release_cube_lock(conn, cube_id)
                conn.commit()

    def _run_locked(self, job_id: uuid.UUID) -> Outcome:
        with self.sessions.begin() as s:
            job = jobs_repo.get_job(s, job_id, lock=True)
            if job is None or job.status not in jobs_repo.UNFINISHED:
                return Outcome("skipped")
            if jobs_repo.cube_tenant(s, job.cube_id) is None:
                job.status, job.error, job.finished_at = "cancelled", "cube was deleted", utcnow()
                return Outcome("skipped")
            job.status = "running"
            job.attempts += 1
            job.started_at = job.started_at or utcnow()
            job.updated_at = utcnow()
            run = JobRun(job_id=job.id, tenant_id=job.tenant_id, cube_id=job.cube_id, kind=job.kind,
                         params=dict(job.params or {}), settings=self.settings, sessions=self.sessions,
                         sink=self.sink, embed=self.embed)
            handler = self.handlers.get(job.kind)
            attempts, max_attempts = job.attempts, job.max_attempts
        try:
            if handler is None:
                raise ValueError(f"no handler for job kind {run.kind!r}")
            result = handler(run)
        except JobCancelled:
            return Outcome("cancelled")
        except Exception as exc:
            log.exception("job %s (%s) failed on try %d", job_id, run.kind, attempts)
            # A quota refusal (a distillation's adapter over the tenant's bytes) fails the same way on every try.
            retry = attempts < max_attempts and not isinstance(exc, QuotaExceeded)
            with self.sessions.begin() as s:
                job = jobs_repo.get_job(s, job_id, lock=True)
                if job is not None and job.status == "cancelled":
                    return Outcome("cancelled")
                if job is not None:
                    job.error = redact(f"{type(exc).__name__}: {exc}")[:4000]
                    job.status = "queued" if retry else "failed"
                    job.updated_at = utcnow()
                    if not retry:
                        job.finished_at = utcnow()
            if retry:
                return Outcome("retry", self.settings.job_backoff_seconds * 2 ** (attempts - 1))
            return Outcome("failed")
        with self.sessions.begin() as s:
            job = jobs_repo.get_job(s, job_id, lock=True)
            if job is not None and job.status != "cancelled":
                job.status, job.result, job.progress = "done", result, 1.0
                job.finished_at = job.updated_at = utcnow()
                job.error = None
        return Outcome("done")


Submit = Callable[[uuid.UUID], None]


class JobService:
    """The API's use cases for jobs: ask for a run, read jobs, cancel a queued one; and the schedule."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], tx: Transactor, submit: Submit) -> None:
        self.settings = settings
        self.sessions = sessions
        self.tx = tx
        self.submit = submit

    def request(self, principal: Principal, cube_id: uuid.UUID, kind: str, params: dict[str, Any]) -> JobOut:
        """Queue a job on a cube; a job of the same kind and parameters still queued there is returned instead."""
        tenant_id = principal.require_cube(cube_id, "write")

        def work(tx: Tx) -> JobOut:
            require_cube(tx.session, tenant_id, cube_id)
            existing = jobs_repo.unfinished_job(tx.session, cube_id, kind, params)
            if existing is not None:
                return job_out(existing)
            job = jobs_repo.add_job(tx.session, tenant_id=tenant_id, cube_id=cube_id, kind=kind, trigger="api",
                                    params=params, max_attempts=self.settings.job_max_attempts)
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="job.create",
                         object_type="job", object_id=job.id, details={"kind": kind, "cube_id": str(cube_id)})
            job_id = job.id
            tx.after_commit.append(lambda: self.submit(job_id))
            return job_out(job)

        return self.tx.run(principal, None, JobOut, work)

    def get(self, principal: Principal, job_id: uuid.UUID) -> JobOut:
        tenant_id = principal.require_tenant()
        with self.sessions() as s:
            job = jobs_repo.tenant_job(s, tenant_id, job_id)
            if job is None:
                raise NotFound("job", job_id)
            principal.require_object(job.cube_id, "read", "job", job_id)
            return job_out(job)

    def list_jobs(self, principal: Principal, cube_id: uuid.UUID | None, status: str | None, kind: str | None,
             limit: int) -> JobList:
        tenant_id = principal.require_cube(cube_id, "read") if cube_id is not None else principal.require_tenant()
        scope = [cube_id] if cube_id is not None else principal.cube_ids
        with self.sessions() as s:
            if cube_id is not None:
                require_cube(s, tenant_id, cube_id)
            return JobList(jobs=[job_out(j) for j in jobs_repo.list_jobs(s, tenant_id, scope, status, kind, limit)])

    def cancel(self, principal: Principal, job_id: uuid.UUID) -> JobOut:
        tenant_id = principal.require_tenant()

        def work(tx: Tx) -> JobOut:
            job = jobs_repo.tenant_job(tx.session, tenant_id, job_id, lock=True)
            if job is None:
                raise NotFound("job", job_id)
            principal.require_object(job.cube_id, "write", "job", job_id)
            if job.status != "queued" and not (job.status == "running" and job.kind in INTERRUPTIBLE):
                raise Conflict(f"job is {job.status}; only a queued job (or a running {', '.join(INTERRUPTIBLE)} "
                               "job) can be cancelled", {"status": job.status})
            job.status, job.finished_at, job.updated_at = "cancelled", utcnow(), utcnow()
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="job.cancel",
                         object_type="job", object_id=job.id)
            return job_out(job)

        return self.tx.run(principal, None, JobOut, work)

    # -- schedule --------------------------------------------------------------------------------------------
    def schedule_all(self) -> list[uuid.UUID]:
        """One consolidation + forgetting job per live cube that changed since its last scheduled run; also
        hands stale unfinished jobs to the queue again (the queue ignores ids it already holds)."""
        created: list[uuid.UUID] = []
        params = {"forget": True, "summaries": True}
        with self.sessions.begin() as s:
            for tenant_id, cube_id in jobs_repo.live_cubes(s):
                if jobs_repo.unfinished_job(s, cube_id, "consolidate", params) is not None:
                    continue
                last = jobs_repo.last_done_start(s, cube_id, "consolidate")
                changed = memories_repo.last_changed(s, cube_id)
                if changed is None or (last is not None and changed < last):
                    continue
                job = jobs_repo.add_job(s, tenant_id=tenant_id, cube_id=cube_id, kind="consolidate",
                                        trigger="schedule", params=params, max_attempts=self.settings.job_max_attempts)
                created.append(job.id)
            stale = jobs_repo.unfinished_jobs(
                s, utcnow() - timedelta(seconds=self.settings.job_timeout_seconds + 60))
        for job_id in [*created, *stale]:
            self.submit(job_id)
        return created

    def tenant_of(self, job_id: uuid.UUID) -> uuid.UUID | None:
        """Whose job it is (the in-process queue serves tenants in turn)."""
        with self.sessions() as s:
            job = jobs_repo.get_job(s, job_id)
            return job.tenant_id if job is not None else None

    def unfinished(self) -> list[uuid.UUID]:
        with self.sessions() as s:
            return jobs_repo.unfinished_jobs(s)
