"""The job queue: arq on Redis when ``MEMCUBED_REDIS_URL`` is set, an in-process thread otherwise.

Why arq: it is asyncio-native (the API is ASGI), small, maintained, and its execution is pessimistic — a job
stays in the Redis queue until a worker finishes it, so a worker killed mid-job leaves the job to be picked up
again once its in-progress marker expires (``job_timeout + 10 s``). It has cron schedules, ``Retry`` with a
delay (our exponential backoff), and de-duplicates enqueues by job id (our ``jobs.id``), so re-submitting an
id is harmless. The queue carries only the job id; state lives in the ``jobs`` table.

A separate worker process cannot touch the API processes' FAISS and fine indexes: its writes reach them through
the change log in Postgres (``app/services/changes.py``), like every other process's writes.

The in-process queue remembers the span that was current when an id was submitted (the request that asked
for the job or wrote the memories to enrich) and hands it to the run as a span link, so a trace backend leads
from the request to the work it queued. Arq carries only the id, so jobs run by a worker are not linked.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Sequence
from datetime import timedelta
from typing import Any

from opentelemetry import trace

from app.config import Settings
from app.fairness import RoundRobin
from app.services.jobs import Outcome

log = logging.getLogger(__name__)


MAX_LINKS = 16
"""Requests linked from one run at most (submits of an id already queued add theirs to its run)."""

Run = Callable[[uuid.UUID, Sequence[trace.Link]], Outcome]


class InProcessQueue:
    """The embedded default: one thread runs the due jobs, tenants taking turns (``tenant_of`` names a job's
    tenant; one tenant's backlog waits behind one job of each other tenant, not the other way round); retries wait
    their backoff. Writes never wait for it. A periodic timer asks for the scheduled jobs."""

    def __init__(self, executor: Run, every_seconds: float = 0, schedule: Callable[[], object] | None = None,
                 tenant_of: Callable[[uuid.UUID], Hashable] | None = None) -> None:
        self._run = executor
        self._tenant_of = tenant_of
        self._heap: list[tuple[float, int, uuid.UUID]] = []  # not due yet, by due time
        self._ready: RoundRobin[uuid.UUID] = RoundRobin()  # due, by tenant
        self._tenants: dict[uuid.UUID, Hashable] = {}
        self._queued: set[uuid.UUID] = set()
        self._links: dict[uuid.UUID, list[trace.Link]] = {}
        self._seq = 0
        self._cond = threading.Condition()
        self._busy = False
        self._stopped = False
        self._every = every_seconds
        self._schedule = schedule
        self._thread = threading.Thread(target=self._loop, name="memcubed-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job_id: uuid.UUID, delay: float = 0.0, links: Sequence[trace.Link] | None = None) -> None:
        """Queue an id (once); the run is linked to ``links``, by default to the submitter's current span."""
        if links is None:
            current = trace.get_current_span().get_span_context()
            links = [trace.Link(current)] if current.is_valid else []
        tenant = self._tenant_of(job_id) if self._tenant_of is not None and job_id not in self._tenants else None
        with self._cond:
            if tenant is not None:
                self._tenants[job_id] = tenant
            known = self._links.setdefault(job_id, [])
            known.extend(links[: MAX_LINKS - len(known)])
            if job_id in self._queued:
                return
            self._queued.add(job_id)
            self._seq += 1
            heapq.heappush(self._heap, (time.monotonic() + delay, self._seq, job_id))
            self._cond.notify_all()

    @property
    def running(self) -> bool:
        """False once stop() was called: long work checks it between steps."""
        return not self._stopped

    def idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._heap and not len(self._ready) and not self._busy, timeout)

    def _loop(self) -> None:
        next_schedule = time.monotonic() + self._every if self._every > 0 else float("inf")
        while True:
            with self._cond:
                while not self._stopped:
                    now = time.monotonic()
                    while self._heap and self._heap[0][0] <= now:
                        _, _, due_id = heapq.heappop(self._heap)
                        self._ready.push(self._tenants.get(due_id), due_id)
                    due = now if len(self._ready) else self._heap[0][0] if self._heap else float("inf")
                    if due <= now or next_schedule <= now:
                        break
                    wake = min(due, next_schedule)
                    self._cond.wait(None if wake == float("inf") else wake - now)
                if self._stopped:
                    return
                links: list[trace.Link] = []
                if next_schedule <= time.monotonic():
                    job_id = None
                else:
                    job_id = self._ready.pop()
                    self._queued.discard(job_id)
                    self._tenants.pop(job_id, None)
                    links = self._links.pop(job_id, [])
                self._busy = True
            try:
                if job_id is None:
                    next_schedule = time.monotonic() + self._every
                    if self._schedule is not None:
                        self._schedule()
                    continue
                outcome = self._run(job_id, links)
                if outcome.status in ("retry", "locked"):
                    self.submit(job_id, outcome.delay, links)
            except Exception:
                log.exception("job %s could not run; it is retried at the next schedule", job_id)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

    def reachable(self) -> bool:
        return True


class ArqQueue:
    """The API's side of the Redis queue: enqueue job ids on an arq pool that lives on its own event loop.

    Redis being down does not stop the API: the pool connects on first use (no retries at start), a job that
    cannot be enqueued stays queued in Postgres and is handed over every RETRY_SECONDS until Redis answers
    (the workers' schedule also re-queues stale jobs), and ``reachable`` tells /readyz.
    """

    RETRY_SECONDS = 5.0

    def __init__(self, settings: Settings) -> None:
        from arq.connections import RedisSettings

        assert settings.redis_url is not None
        self.settings = settings
        self._redis_settings = RedisSettings.from_dsn(settings.redis_url)
        self._redis_settings.conn_retries = 0
        self._redis_settings.conn_timeout = 2
        self._pool: Any = None
        self._pending: dict[uuid.UUID, float] = {}  # job id -> delay: queued in Postgres, not yet on Redis
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="memcubed-arq", daemon=True)
        self._thread.start()
        self._retrier = asyncio.run_coroutine_threadsafe(self._start_retrier(), self._loop).result(timeout=5)

    async def _start_retrier(self) -> asyncio.Task[None]:
        return asyncio.create_task(self._retry_pending())

    async def _connected(self) -> Any:
        from arq import create_pool

        if self._pool is None:
            self._pool = await create_pool(self._redis_settings, default_queue_name=self.settings.redis_queue)
        return self._pool

    async def _enqueue(self, job_id: uuid.UUID, delay: float) -> None:
        pool = await self._connected()
        await pool.enqueue_job("run_job", str(job_id), _job_id=str(job_id),
                               _defer_by=timedelta(seconds=delay) if delay else None)

    def submit(self, job_id: uuid.UUID, delay: float = 0.0) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._enqueue(job_id, delay), self._loop).result(timeout=10)
        except Exception as exc:
            log.warning("could not enqueue job %s on Redis (%s); it stays queued and is retried", job_id, exc)
            with self._lock:
                self._pending[job_id] = delay

    async def _retry_pending(self) -> None:
        while True:
            await asyncio.sleep(self.RETRY_SECONDS)
            with self._lock:
                pending = dict(self._pending)
            for job_id, delay in pending.items():
                try:
                    await self._enqueue(job_id, delay)
                except Exception:
                    break  # still down: the next round tries again
                with self._lock:
                    self._pending.pop(job_id, None)

    def reachable(self) -> bool:
        async def ping() -> None:
            await (await self._connected()).ping()

        try:
            asyncio.run_coroutine_threadsafe(ping(), self._loop).result(timeout=3)
            return True
        except Exception:
            return False

    def stop(self) -> None:
        async def shutdown() -> None:
            self._retrier.cancel()
            await asyncio.gather(self._retrier, return_exceptions=True)
            if self._pool is not None:
                await self._pool.aclose()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        except Exception:
            log.debug("arq queue shutdown failed", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
