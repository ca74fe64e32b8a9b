"""Builds the service's object graph once per process: settings → database → model → index → services."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app import __version__, llm, observability
from app.budget.cache import ResultCache
from app.config import Settings
from app.db import open_database, ping
from app.errors import NotCaughtUp
from app.graph.traversal import GraphCache
from app.principal import Principal
from app.ratelimit import RateLimiter
from app.repositories import changes as changes_repo
from app.repositories import graph as graph_repo
from app.retrieval.fine import FineRetriever
from app.services.activation import ActivationService
from app.services.adapters import AdapterService
from app.services.admission import AdmissionService
from app.services.auth import AuthService, new_key
from app.services.base import Transactor
from app.services.changes import ChangeFollower, IndexApplier
from app.services.cubes import CubeService
from app.services.derived import DerivedIndexes
from app.services.enrichment import EnrichmentService
from app.services.forget_requests import ForgetRequestService
from app.services.forgetting import ForgettingService
from app.services.generation import GenerationService
from app.services.graph import GraphService
from app.services.indexing import IndexService
from app.services.jobs import JobExecutor, JobService, Outcome
from app.services.lifecycle import LifecycleService
from app.services.memories import MemoryService
from app.services.merge import MergeService
from app.services.quotas import QuotaService
from app.services.routing.service import RoutingService
from app.services.search import SearchService
from app.services.snapshots import SnapshotService
from app.services.supersession import Supersession
from app.vector.embedder import Embedder, embedder_for, set_compute_threads
from app.vector.fine import FineStore
from app.vector.index import Flusher, VectorStore
from app.vector.splade import load_splade
from app.workers.queue import ArqQueue, InProcessQueue
from app.workers.runtime import JobMachinery, handlers

log = logging.getLogger(__name__)

# The CLI acts as an admin without an HTTP key.
SYSTEM = Principal(key_id=uuid.UUID(int=0), scope="admin", tenant_id=None)


@dataclass
class Container:
    settings: Settings
    database_url: str
    engine: Engine
    sessions: sessionmaker[Session]
    embedder: Embedder
    vectors: VectorStore
    fine: FineStore
    flusher: Flusher
    enrichment: EnrichmentService
    enricher: InProcessQueue
    graph: GraphService
    auth: AuthService
    cubes: CubeService
    memories: MemoryService
    search: SearchService
    indexing: IndexService
    activation: ActivationService
    generation: GenerationService
    adapters: AdapterService
    jobs: JobMachinery
    forgetting: ForgettingService
    forget_requests: ForgetRequestService
    routing: RoutingService
    lifecycle: LifecycleService
    snapshots: SnapshotService
    merges: MergeService
    quotas: QuotaService
    changes: ChangeFollower
    tracing: TracerProvider | None = None
    limiter: RateLimiter | None = None  # None: MEMCUBED_RATE_LIMIT_ENABLED is off
    admin_key_created: str | None = None

    def database_ok(self) -> bool:
        try:
            ping(self.engine)
            return True
        except Exception:
            return False

    def degraded(self) -> dict[str, str]:
        """What works less than configured while the service still reads and writes."""
        out: dict[str, str] = {}
        if self.settings.redis_url and not self.jobs.queue.reachable():
            out["redis"] = ("unreachable: jobs stay queued in Postgres and go to the workers once it answers; "
                            "the result cache serves nothing meanwhile")
        llm_state = llm.degraded(self.settings)
        if llm_state is not None:
            out["llm"] = llm_state
        return out

    def caught_up(self, seq: int) -> None:
        """Wait (bounded) until this process has applied change ``seq``: read-your-writes across processes."""
        if not self.changes.wait_for(seq, self.settings.min_seq_wait_seconds):
            raise NotCaughtUp(f"this process has not applied change {seq} yet; retry (another process may have)",
                              {"min_seq": seq, "applied_through": self.changes.applied_through})

    def close(self) -> None:
        self.changes.stop()
        self.jobs.close()
        self.enricher.stop()
        self.flusher.stop()
        self.engine.dispose()


def build(settings: Settings, tracing: TracerProvider | None = None) -> Container:
    """Everything the service needs; spans go to ``tracing``, else to the settings' OTLP endpoint, if any."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url, engine, sessions = open_database(settings)
    try:
        return _assemble(settings, url, engine, sessions, tracing or observability.tracer_provider(settings))
    except Exception:
        engine.dispose()
        raise


def _assemble(settings: Settings, url: str, engine: Engine, sessions: sessionmaker[Session],
              tracing: TracerProvider | None) -> Container:
    # Without a provider: the global one, a no-op unless an embedding application set its own.
    tracer = trace.get_tracer("memcubed", __version__, tracer_provider=tracing)
    set_compute_threads(settings.threads)
    embedder = embedder_for(settings)  # builds the runtime's ONNX file here, at start, when it is not cached
    vectors = VectorStore(settings.index_dir, embedder.dim, embedder.name, settings.ivf_min_vectors,
                          settings.ivf_nprobe)
    fine = FineStore(settings.fine_dir, load_splade, embedder.encode, embedder.dim)
    tx = Transactor(sessions, timedelta(hours=settings.idempotency_ttl_hours))
    changes = ChangeFollower(sessions, url, settings.change_poll_seconds,
                             timedelta(hours=settings.change_log_retention_hours))
    changes.begin()  # before the indexes load: whatever commits meanwhile is read from the log afterwards

    def committed(seqs: list[int]) -> None:
        """A write of this process: applied here by its own path; its number goes back to the client."""
        for seq in seqs:
            changes.mark_applied(seq)
        request = observability.CURRENT.get()
        if request is not None:
            request.seq = max(request.seq or 0, *seqs)

    changes_repo.track_commits(sessions, changes.claim, committed, changes.release)
    indexing = IndexService(sessions, vectors, embedder.name, embedder.dim)
    indexing.load_and_heal()
    flusher = Flusher([vectors.flush, fine.flush], settings.index_flush_seconds)
    flusher.start()

    def cube_edges(cube_id: uuid.UUID) -> list[tuple[int, int, str, float]]:
        with sessions() as s:
            return graph_repo.cube_edges(s, cube_id)

    graphs = GraphCache(cube_edges)
    enrichment = EnrichmentService(sessions, vectors, fine, tracer=tracer)
    results = ResultCache(settings.redis_url, settings.redis_queue, settings.routing_cache_size,
                          settings.routing_cache_similarity)

    def enrich(cube_id: uuid.UUID, links: Sequence[trace.Link]) -> Outcome:
        try:
            indexes.run_deferred(cube_id)
            enrichment.enrich_cube(cube_id, keep_going=lambda: enricher.running, links=links)
        except OperationalError as exc:  # e.g. a deadlock with a consolidation job: try again shortly
            log.warning("enrichment of cube %s failed (%s); retrying", cube_id, exc.orig)
            return Outcome("retry", 2.0)
        finally:
            graphs.invalidate(cube_id)
            results.invalidate(cube_id)  # fine indexes changed: routed results cached meanwhile are stale
        return Outcome("done")

    # The same in-process runner as jobs: one thread, a queued cube is not queued twice.
    enricher = InProcessQueue(enrich)
    indexes = DerivedIndexes(vectors, fine, graphs, enricher.submit, results.invalidate)
    applier = IndexApplier(sessions, indexes)
    pending, stale = indexing.heal_fine(fine)
    for cube_id, vec_ids in stale.items():  # on the enrichment thread: the start does not wait for it
        indexes.defer(cube_id, len(vec_ids), partial(applier.fine, cube_id, vec_ids))
    for cube_id in pending:
        enricher.submit(cube_id)
    enricher.start()
    changes.start(applier)
    auth = AuthService(sessions, tx, settings.key_cache_seconds)
    # The fuse_activation job builds its KV cache with the activation service defined below.
    jobs = build_jobs(settings, engine, sessions, tx, embedder, indexes,
                      lambda: activation, tracer)
    retriever = FineRetriever(vectors, fine, graphs, tracer)
    forget_requests = ForgetRequestService(settings, sessions, tx, embedder, indexes)
    search = SearchService(sessions, embedder, vectors, retriever)
    # Lazy: the activation model loads on the first activation or generate request, not here.
    activation = ActivationService(settings, sessions, tx, search)
    memories = MemoryService(settings, sessions, tx, embedder, indexes, AdmissionService(settings, vectors),
                             forget_requests, Supersession(settings, indexes))
    adapters = AdapterService(settings, sessions, tx, jobs.jobs, activation)
    generation = GenerationService(settings, sessions, activation)
    lifecycle = LifecycleService(settings, sessions, tx, memories, indexes, activation)
    container = Container(
        settings=settings, database_url=url, engine=engine, sessions=sessions, embedder=embedder,
        vectors=vectors, fine=fine, flusher=flusher, enrichment=enrichment, enricher=enricher,
        graph=GraphService(sessions), auth=auth,
        cubes=CubeService(settings, sessions, tx, indexes),
        quotas=QuotaService(settings, sessions, tx),
        memories=memories,
        forget_requests=forget_requests,
        search=search, indexing=indexing,
        activation=activation,
        adapters=adapters,
        jobs=jobs, forgetting=ForgettingService(sessions, tx, indexes),
        generation=generation,
        routing=RoutingService(settings, sessions, embedder, fine, retriever, graphs, generation, results),
        lifecycle=lifecycle,
        snapshots=SnapshotService(sessions, tx, memories, indexes, lifecycle),
        merges=MergeService(settings, sessions, memories, jobs.jobs, adapters),
        changes=changes,
        tracing=tracing,
        limiter=RateLimiter(settings) if settings.rate_limit_enabled else None,
    )
    container.admin_key_created = bootstrap_admin_key(settings, auth)
    return container


def build_jobs(settings: Settings, engine: Engine, sessions: sessionmaker[Session], tx: Transactor,
               embedder: Embedder, indexes: DerivedIndexes,
               activation: Callable[[], ActivationService] | None = None,
               tracer: trace.Tracer | None = None) -> JobMachinery:
    """Jobs run on the Redis queue (``memcubed worker``) when MEMCUBED_REDIS_URL is set, else in this process."""
    executor = JobExecutor(settings, engine, sessions, indexes, embedder.encode, handlers(settings, activation),
                           tracer)
    if settings.redis_url:
        queue: ArqQueue | InProcessQueue = ArqQueue(settings)
        return JobMachinery(jobs=JobService(settings, sessions, tx, queue.submit), executor=executor, queue=queue)
    holder: list[JobService] = []
    inproc = InProcessQueue(executor.run, settings.schedule_minutes * 60, lambda: holder[0].schedule_all(),
                            lambda job_id: holder[0].tenant_of(job_id))
    service = JobService(settings, sessions, tx, inproc.submit)
    holder.append(service)
    inproc.start()
    for job_id in service.unfinished():  # interrupted by a stop or crash: run again
        inproc.submit(job_id)
    return JobMachinery(jobs=service, executor=executor, queue=inproc)


def prepare_database(settings: Settings) -> tuple[str, str | None]:
    """What several processes on one database must not race for, done once by their supervisor: reach (or
    start) Postgres, migrate, register the admin key. Returns the database URL and the key if created now."""
    url, engine, sessions = open_database(settings)
    try:
        return url, bootstrap_admin_key(settings, AuthService(sessions, Transactor(sessions)))
    finally:
        engine.dispose()


def bootstrap_admin_key(settings: Settings, auth: AuthService) -> str | None:
    """Register the configured admin key (revoking any other: rotation), or create one on first start and keep it
    in the data dir.

    Returns the key when it was created now, so the caller can print it once.
    """
    if settings.admin_key:
        auth.rotate_admin_key(settings.admin_key)
        return None
    path = settings.data_dir / "admin_key"
    if path.exists():
        auth.ensure_admin_key(path.read_text().strip())
        return None
    raw = new_key()
    auth.ensure_admin_key(raw)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(raw + "\n")
    return raw

