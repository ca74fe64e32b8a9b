"""Wiring of the job machinery, for the API process (in-process or Redis queue) and the worker process."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import Engine

from app import __version__, observability
from app.config import Settings
from app.db import open_database
from app.memory.summaries import summariser_from
from app.services.activation import ActivationService
from app.services.adapters import DistillJob
from app.services.base import Transactor
from app.services.consolidation import ConsolidationService
from app.services.forgetting import forget
from app.services.jobs import Handler, IndexSink, JobExecutor, JobService
from app.services.merge import FuseActivation
from app.vector.embedder import embedder_for
from app.workers.queue import ArqQueue

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


class LoggedChanges:
    """A worker's index sink: nothing to do here, the change log carries the worker's writes to every API
    process (the triggers logged them in the job's own transaction)."""

    def add(self, cube_id: uuid.UUID, vec_ids: Sequence[int], vecs: np.ndarray) -> None:
        return None

    def remove(self, cube_id: uuid.UUID, vec_ids: Sequence[int]) -> None:
        return None


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
    sink: IndexSink = LoggedChanges()
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


@dataclass
class JobMachinery:
    """What the API process holds: the job service and the queue."""

    jobs: JobService
    executor: JobExecutor
    queue: Any

    def idle(self, timeout: float | None = None) -> bool:
        idle = getattr(self.queue, "idle", None)
        return bool(idle(timeout)) if idle is not None else True

    def close(self) -> None:
        self.queue.stop()
