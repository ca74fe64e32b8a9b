"""Wiring of the job machinery, for the API process (in-process or Redis queue) and the worker process."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app import __version__, observability
from app.config import Settings
from app.db import open_database
from app.memory.summaries import summariser_from
from app.repositories import memories as repo
from app.services.activation import ActivationService
from app.services.adapters import DistillJob
from app.services.base import Transactor
from app.services.consolidation import ConsolidationService
from app.services.forgetting import forget
from app.services.indexing import IndexService
from app.services.jobs import Handler, IndexSink, JobExecutor, JobService
from app.services.merge import FuseActivation
from app.vector.embedder import embedder_for
from app.vector.fine import FineStore
from app.vector.index import Fingerprint, VectorStore
from app.workers.queue import ArqQueue, RedisIndexNotifier

log = logging.getLogger(__name__)


def handlers(settings: Settings, activation: Callable[[], ActivationService] | None = None) -> dict[str, Handler]:
    """``activation``: the API process's activation service; fuse_activation builds its KV cache there (a worker
    process has no activation model, so it has no such handler)."""
    consolidation = ConsolidationService(summariser_from(settings), forget)
    found: dict[str, Handler] = {"consolidate": consolidation.run, "forget": forget,
                                 "distill": DistillJob(settings).run}
    if activation is not None:
        found["fuse_activation"] = FuseActivation(activation)
    return found


class LazyEmbed:
    """The worker loads the embedding model on the first summary, not at start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._encode: Callable[[list[str]], np.ndarray] | None = None
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            if self._encode is None:
                self._encode = embedder_for(self.settings).encode
        return self._encode(texts)


@dataclass
class WorkerRuntime:
    engine: Engine
    executor: JobExecutor
    jobs: JobService
    tracing: TracerProvider | None = None

    def close(self) -> None:
        self.engine.dispose()
        if self.tracing is not None:
            self.tracing.shutdown()  # exports the job spans still buffered


def build_worker_runtime(settings: Settings) -> WorkerRuntime:
    _, engine, sessions = open_database(settings)
    sink: IndexSink = RedisIndexNotifier(settings)
    tracing = observability.tracer_provider(settings)  # job spans, unlinked: arq carries only the job id
    executor = JobExecutor(settings, engine, sessions, sink, LazyEmbed(settings), handlers(settings),
                           trace.get_tracer("memcubed", __version__, tracer_provider=tracing))
    queue: ArqQueue | None = None

    def submit(job_id: uuid.UUID) -> None:
        nonlocal queue
        if queue is None:
            queue = ArqQueue(settings)
        queue.submit(job_id)

    jobs = JobService(settings, sessions, Transactor(sessions), submit)
    log.info("memcubed worker ready: queue %s", settings.redis_queue)
    return WorkerRuntime(engine=engine, executor=executor, jobs=jobs, tracing=tracing)


def reconcile(sessions: sessionmaker[Session], vectors: VectorStore, fine: FineStore, indexing: IndexService,
              schedule_enrichment: Callable[[uuid.UUID], None]) -> list[uuid.UUID]:
    """Make every dense index match Postgres again (and the fine indexes, through re-enrichment)."""
    rebuilt: list[uuid.UUID] = []
    with sessions() as s:
        want = repo.index_fingerprints(s)
        for cube_id in set(want) | set(vectors.cube_ids()):
            index = vectors.peek(cube_id)
            have = index.fingerprint() if index is not None else Fingerprint(0, 0)
            if have != Fingerprint(*want.get(cube_id, (0, 0))):
                indexing._rebuild(s, cube_id)
                rebuilt.append(cube_id)
    for cube_id in indexing.heal_fine(fine):
        schedule_enrichment(cube_id)
    return rebuilt


@dataclass
class JobMachinery:
    """What the API process holds: the job service, the queue, and (Redis mode) the index notice subscriber."""

    jobs: JobService
    executor: JobExecutor
    queue: Any
    subscriber: Any = None

    def idle(self, timeout: float | None = None) -> bool:
        idle = getattr(self.queue, "idle", None)
        return bool(idle(timeout)) if idle is not None else True

    def close(self) -> None:
        if self.subscriber is not None:
            self.subscriber.stop()
        self.queue.stop()
