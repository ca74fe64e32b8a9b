"""Budget-routed search, context and answer: plan the budget, consult the cache, pick tiers (policy or
forced), run each module's tier, and report tiers, reasons and measured cost in ``routing``.

Order of decisions for context and answer: the cache (exact, then semantic); the full-context shortcut
(everything in the cubes fits the token budget → all of it, in event-time order); abstention (the best
candidate's dense cosine to the query is under MEMCUBED_ABSTAIN_FLOOR → nothing); then the tiers.

The relevance signal for abstention is the cosine between the query embedding and the stored embedding of
each retrieved candidate (each memory's indexed text, MiniLM, normalised), whichever tier retrieved it:
rank-fusion scores (RRF) and BM25 scores have no absolute scale, cosine does.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.activation.tokens import TokenCounter
from app.budget.cache import ResultCache
from app.budget.features import QueryFeatures, featurize
from app.budget.plan import Plan, as_mapping, decide, plan
from app.budget.policy import Decision, PolicyStore
from app.budget.stats import RoutingBook
from app.budget.tiers import SPECS, Meter
from app.config import Settings
from app.errors import NotFound
from app.graph.traversal import GraphCache
from app.llm import current, tracked
from app.memory.filters import memory_filter
from app.memory.ranking import ranked_for_agent, search_hits
from app.memory.summaries import summariser_from
from app.models import Memory
from app.principal import Principal
from app.repositories import cubes
from app.repositories import memories as repo
from app.retrieval.fine import FineRetriever
from app.retrieval.unindexed import by_relevance
from app.schemas.memories import SearchRequest, SearchResponse
from app.schemas.routing import (
    AnswerRequest,
    AnswerResponse,
    BudgetLimits,
    CacheReport,
    ContextRequest,
    ContextResponse,
    Evidence,
    LLMReport,
    PolicyInfo,
    Routing,
    RoutingCost,
    RoutingStats,
)
from app.services.generation import GenerationService
from app.services.quotas import check_context_tokens
from app.services.routing.abstention import Floors, abstain_reason, evidence
from app.services.routing.answer import Answerer
from app.services.routing.context import Assembler, Fitted, piece
from app.services.routing.retrieval import Retrieval, needs_embedding
from app.vector.embedder import Embedder
from app.vector.fine import FineStore

Response = SearchResponse | ContextResponse | AnswerResponse
TOTALS_MEMO = 4096  # cube sets whose sizes are remembered between writes
NO_POLICY = "no trained router policy (memcubed router train); the documented rules decided"


@dataclass
class Request:
    """What one routed request is about, shared by its steps."""

    tenant_id: uuid.UUID
    cube_ids: tuple[uuid.UUID, ...]
    route: str
    plan: Plan
    scope: str
    generations: tuple[int, ...] | None  # None: the cache cannot be used for this request
    started: float


class RoutingService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], embedder: Embedder, fine: FineStore,
                 retriever: FineRetriever, graphs: GraphCache, generation: GenerationService,
                 cache: ResultCache) -> None:
        self.settings = settings
        self.sessions = sessions
        self.embedder = embedder
        self.cache = cache
        self.tokens = TokenCounter(generation.activation.spec())
        self.policies = PolicyStore(settings.data_dir)
        self.book = RoutingBook()
        self.retrieval = Retrieval(fine, retriever)
        self.assembler = Assembler(self.tokens, graphs, summariser_from(settings))
        self.answerer = Answerer(settings, generation)
        self.floors = Floors(settings.abstain_floor, settings.abstain_overlap_floor)
        self._totals: dict[tuple[uuid.UUID, ...], tuple[tuple[int, ...], tuple[int, int, int]]] = {}  # per generation

    @property
    def llm_configured(self) -> bool:
        return self.settings.llm_base_url is not None

    # -- use cases ------------------------------------------------------------------------------------------
    def search(self, principal: Principal, req: SearchRequest) -> SearchResponse:
        assert req.budget is not None
        r = self._start(principal, req.cube_ids, req.budget, "search", req.top_k,
                        req.filters.model_dump(mode="json", exclude_none=True))
        cached = self._cached(r, req.query, None, req.use_cache)
        if cached is not None:
            assert isinstance(cached, SearchResponse)
            return cached
        flt = memory_filter(req.filters, status=None)
        meter = Meter()
        with self.sessions() as s:
            decision, warnings, features = self._decide(s, r, req.query)
            tier = decision.tiers["retrieval"]
            qvec = None
            if needs_embedding(tier):
                with meter.timed("retrieval"):
                    qvec = self.embedder.encode_one(req.query)
                hit = self._cached(r, req.query, qvec, req.use_cache)
                if hit is not None:
                    assert isinstance(hit, SearchResponse)
                    return hit
            with meter.timed("retrieval"):
                allowed = (None if flt.is_empty() else
                           {c: np.asarray(repo.filtered_vec_ids(s, c, flt), dtype=np.int64) for c in r.cube_ids})
                ranked = self.retrieval.run(s, tier, list(r.cube_ids), req.query, qvec, req.top_k, allowed)
                rows = repo.active_by_vec_ids(s, [v for v, _ in ranked])
                results = search_hits(s, [(rows[v], round(score, 6), None) for v, score in ranked if v in rows],
                                      req.include_superseded, req.query, self.embedder.encode)
        took = self._ms(r)
        out = SearchResponse(results=results, took_ms=took,
                             routing=self._routing(decision, warnings, meter, took, 0, features))
        self._finish(r, req.query, qvec, req.use_cache, out)
        return out

    def context(self, principal: Principal, req: ContextRequest) -> ContextResponse:
        with tracked():
            out = self._context(principal, req, "context")
        assert isinstance(out, ContextResponse)
        return out

    def answer(self, principal: Principal, req: AnswerRequest) -> AnswerResponse:
        with tracked():
            out = self._context(principal, req, "answer")
        assert isinstance(out, AnswerResponse)
        return out

    def stats(self, principal: Principal) -> RoutingStats:
        """Tenant-wide counters, so only a key of the whole tenant sees them."""
        return self.book.stats(principal.require_unscoped("read"), self.cache.backend, self.llm_configured)

    # -- the context pipeline -------------------------------------------------------------------------------
    def _context(self, principal: Principal, req: ContextRequest, route: str) -> Response:
        check_context_tokens(self.settings, req.budget.max_tokens if isinstance(req.budget, BudgetLimits) else None)
        r = self._start(principal, req.cube_ids, req.budget, route, req.top_k, {})
        cached = self._cached(r, req.query, None, req.use_cache)
        if cached is not None:
            return cached
        meter = Meter()
        limit = r.plan.max_tokens or self.settings.routing_context_tokens
        with self.sessions() as s:
            decision, warnings, features = self._decide(s, r, req.query)
            with meter.timed("retrieval"):
                qvec = self.embedder.encode_one(req.query)
            hit = self._cached(r, req.query, qvec, req.use_cache)
            if hit is not None:
                return hit
            reasons = dict(decision.reasons)
            full = self._full_context(s, r, limit, req.query, qvec)
            ev: Evidence | None = None
            abstained = False
            if full is not None:  # everything fits: never abstain, the reader sees it all
                mems, fitted = full
                reason = f"rule: full context (all {len(mems)} memories fit in {limit} tokens)"
                reasons.update(retrieval=reason, context=reason)
            else:
                with meter.timed("retrieval"):
                    ranked = self.retrieval.run(s, decision.tiers["retrieval"], list(r.cube_ids), req.query, qvec,
                                                req.top_k, None)
                    rows = repo.active_by_vec_ids(s, [v for v, _ in ranked])
                    found = [(rows[v], score) for v, score in ranked if v in rows]
                    scores = {m.id: score for m, score in found}
                    ordered = ranked_for_agent(s, req.query, [m for m, _ in found], self.embedder.encode).order
                    snippets = [(m, scores[m.id]) for m in ordered]
                    ev = evidence(req.query, qvec, [m for m, _ in snippets])
                why = abstain_reason(ev, self.floors)
                abstained = why is not None
                if why is not None:
                    fitted = Fitted("", [], 0)
                    reasons["context"] = why
                else:
                    answer_calls = SPECS["answer"][decision.tiers["answer"]].llm_calls if route == "answer" else 0
                    left = r.plan.llm_calls_left(answer_calls)
                    with meter.timed("context"):
                        fitted = self.assembler.assemble(s, decision.tiers["context"], snippets, limit, left, meter)
        decision = Decision(decision.tiers, reasons, decision.version, decision.lam)
        is_full = full is not None
        if route == "context":
            out: Response = ContextResponse(
                context=fitted.context, items=fitted.items, tokens=fitted.tokens, abstained=abstained,
                full_context=is_full, evidence=ev,
                routing=self._routing(decision, warnings, meter, self._ms(r), fitted.tokens, features))
            return self._finish(r, req.query, qvec, req.use_cache, out)
        text = model = None
        if not abstained:
            with meter.timed("answer"):
                reply = self.answerer.answer(principal, decision.tiers["answer"], req.query, fitted.context)
            text, model = reply.text, reply.model
            meter.tokens += reply.tokens
            meter.llm_calls += reply.llm_calls
        out = AnswerResponse(
            context=fitted.context, items=fitted.items, tokens=fitted.tokens, abstained=abstained,
            full_context=is_full, evidence=ev, answer=text, model=model,
            routing=self._routing(decision, warnings, meter, self._ms(r), fitted.tokens, features))
        return self._finish(r, req.query, qvec, req.use_cache, out)

    # -- steps ----------------------------------------------------------------------------------------------
    def _start(self, principal: Principal, cube_ids: list[uuid.UUID], budget: object, route: str, top_k: int,
               extra: dict[str, object]) -> Request:
        started = time.perf_counter()
        unique = tuple(dict.fromkeys(cube_ids))
        tenant_id = principal.require_tenant()
        for cube_id in unique:
            principal.require_cube(cube_id, "read")
        p = plan(budget, route, self.llm_configured)  # type: ignore[arg-type]
        ordered = tuple(sorted(unique, key=str))
        scope = json.dumps([str(tenant_id), route, [str(c) for c in ordered], top_k, as_mapping(budget),  # type: ignore[arg-type]
                            extra], sort_keys=True)
        # Read before any work: an entry stored under these generations is stale once a write lands meanwhile.
        return Request(tenant_id, ordered, route, p, scope, self.cache.generations.get(ordered), started)

    def _decide(self, s: Session, r: Request, query: str) -> tuple[Decision, list[str], QueryFeatures]:
        """Runs after the exact cache lookup, which needs no database: an entry exists only once a request
        of this tenant found these cubes live, and deleting a cube drops its indexes, which makes it stale."""
        live = cubes.live_cube_ids(s, r.tenant_id, list(r.cube_ids))
        for cube_id in r.cube_ids:
            if cube_id not in live:
                raise NotFound("cube", cube_id)
        policy, warnings = self.policies.current()
        count, _, sessions = self._cube_totals(s, r)
        features = featurize(query, count, sessions, self.cache.holds(r.scope))
        decision = decide(r.plan, policy, features)
        if r.plan.allowed and decision.version is None and not warnings:
            warnings = [NO_POLICY]
        return decision, [*r.plan.warnings, *warnings], features

    def _cube_totals(self, s: Session, r: Request) -> tuple[int, int, int]:
        """Memories, characters and sessions of the cube set, recounted only after a write (generation)."""
        known = self._totals.get(r.cube_ids)
        if known is not None and r.generations is not None and known[0] == r.generations:
            return known[1]
        totals = repo.cube_totals(s, r.cube_ids)
        if r.generations is not None:
            if len(self._totals) >= TOTALS_MEMO:
                self._totals.clear()
            self._totals[r.cube_ids] = (r.generations, totals)
        return totals

    def _full_context(self, s: Session, r: Request, limit: int, query: str,
                      qvec: np.ndarray) -> tuple[list[Memory], Fitted] | None:
        """All memories, when they fit, most relevant first and each dated: cheap bounds first (every line is at
        least two tokens, and no token is longer than 16 characters in practice), then the exact count."""
        count, chars, _ = self._cube_totals(s, r)
        if count == 0 or count * 2 > limit or chars > limit * 16:
            return None
        everything = by_relevance(query, qvec, repo.active_in_event_order(s, r.cube_ids))
        mems = ranked_for_agent(s, query, everything, self.embedder.encode).order
        pieces = [piece(m, "snippet", None, True) for m in mems]
        text = "\n".join(p.line for p in pieces)
        tokens = self.tokens.count(text)
        return (mems, Fitted(text, [p.item for p in pieces], tokens)) if tokens <= limit else None

    def _cached(self, r: Request, query: str, qvec: np.ndarray | None, use: bool) -> Response | None:
        if not use:
            return None
        found = (self.cache.get_exact(r.scope, r.cube_ids, query) if qvec is None
                 else self.cache.get_semantic(r.scope, r.cube_ids, qvec))
        if found is None:
            return None
        assert isinstance(found, SearchResponse | ContextResponse | AnswerResponse)
        took = self._ms(r)
        old = found.routing
        assert old is not None
        routing = Routing(tiers=old.tiers, reasons={m: "cache hit" for m in old.tiers}, policy=old.policy,
                          warnings=old.warnings,
                          cost=RoutingCost(ms={"total": took}, tokens=getattr(found, "tokens", 0), llm_calls=0),
                          cache=CacheReport(hit=True, kind="exact" if qvec is None else "semantic"))
        update: dict[str, object] = {"routing": routing}
        if isinstance(found, SearchResponse):
            update["took_ms"] = took
        self.book.record(r.tenant_id, routing)
        return found.model_copy(update=update)

    def _routing(self, d: Decision, warnings: list[str], meter: Meter, took: float, context_tokens: int,
                 features: QueryFeatures) -> Routing:
        return Routing(
            tiers=d.tiers,
            reasons=d.reasons,
            policy=PolicyInfo(version=d.version, lam=d.lam if d.lam is not None else 0.0)
            if d.version is not None else None,
            warnings=warnings,
            cost=RoutingCost(ms=meter.report(took), tokens=context_tokens + meter.tokens, llm_calls=meter.llm_calls),
            cache=CacheReport(hit=False),
            llm=LLMReport(**current().report()),  # context and answer collect it
            features=features.as_json(),
        )

    def _finish(self, r: Request, query: str, qvec: np.ndarray | None, use: bool, out: Response) -> Response:
        assert out.routing is not None
        self.book.record(r.tenant_id, out.routing)
        if use:
            self.cache.put(r.scope, r.cube_ids, r.generations, query, qvec, out)
        return out

    @staticmethod
    def _ms(r: Request) -> float:
        return round((time.perf_counter() - r.started) * 1000, 3)
