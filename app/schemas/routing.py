"""Budget-tier routing: budgets on requests, the ``routing`` report on responses, context and answer bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Tier = Literal["low", "mid", "high"]
Module = Literal["retrieval", "context", "extraction", "answer"]
ItemRole = Literal["snippet", "neighbour", "summary", "graph"]

# Limits past these are mistakes, not budgets: refused with a 422 rather than silently honoured.
MAX_TOKENS_LIMIT = 1_000_000
MAX_MS_LIMIT = 600_000.0
MAX_LLM_CALLS_LIMIT = 100


class BudgetLimits(BaseModel):
    """Hard limits for one request; tiers are then chosen (by the router) to fit them."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(
        default=None, ge=1, le=MAX_TOKENS_LIMIT,
        description="Longest context, in the answer model's tokens; never exceeded.")
    max_ms: float | None = Field(
        default=None, gt=0, le=MAX_MS_LIMIT,
        description="Latency target: tiers whose expected cost fits are preferred (best effort; reported).")
    max_llm_calls: int | None = Field(
        default=None, ge=0, le=MAX_LLM_CALLS_LIMIT, description="Most LLM calls the request may make; never exceeded.")
    tiers: dict[Module, Tier] | None = Field(
        default=None, description="Force a tier per module (the rest are routed); used to log every combination.")


Budget = Literal["low", "mid", "high", "auto"] | BudgetLimits
BUDGET_DESCRIPTION = (
    "low | mid | high (every module at that tier), auto (the router picks per module), or hard limits "
    "{max_tokens, max_ms, max_llm_calls, tiers}.")


class RoutingCost(BaseModel):
    ms: dict[str, float] = Field(description="Measured milliseconds per module, and their total.")
    tokens: int = Field(description="Context tokens produced plus tokens spent in LLM calls.")
    llm_calls: int


class CacheReport(BaseModel):
    hit: bool
    kind: Literal["exact", "semantic"] | None = None


class LLMReport(BaseModel):
    """What the request's LLM steps did (forget-request classifier, supersession judge, extraction, summaries,
    answers): the same shape wherever a response reports it."""

    used: bool = Field(default=False, description="At least one LLM call answered.")
    fallback: Literal["timeout", "circuit_open", "error", "not_configured"] | None = Field(
        default=None, description="Why a step took its no-LLM path (the first reason): the call timed out, the "
        "circuit breaker is open after repeated failures, the call or its reply failed, or no LLM is configured; "
        "null when none did.")


class PolicyInfo(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    version: int
    lam: float = Field(alias="lambda")


class Routing(BaseModel):
    """Which tier ran per module, why, and what it cost."""

    tiers: dict[str, Tier]
    reasons: dict[str, str]
    policy: PolicyInfo | None = None
    warnings: list[str] = Field(default_factory=list)
    cost: RoutingCost
    cache: CacheReport = Field(default_factory=lambda: CacheReport(hit=False))
    llm: LLMReport = Field(default_factory=LLMReport, description="What the request's LLM steps did.")
    features: dict[str, Any] | None = Field(
        default=None, description="What the router saw of the query (app/budget/features.py); null on a cache hit.")


class ContextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=8192)
    cube_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)
    top_k: int = Field(default=10, ge=1, le=200)
    budget: Budget = Field(default="auto", description=BUDGET_DESCRIPTION)
    use_cache: bool = Field(default=True, description="Serve from (and fill) the semantic cache.")


class AnswerRequest(ContextRequest):
    """The context request's fields; the answer module then answers from that context."""


class Evidence(BaseModel):
    """What the abstention decision saw in the top candidates."""

    cosine: float = Field(description="Best dense cosine between the query and a candidate.")
    overlap: float = Field(description="Share of the query's content words (stemmed) found in the candidates.")
    names: float | None = Field(description="Share of the query's names found in the candidates; null if none.")


class ContextItem(BaseModel):
    memory_id: uuid.UUID | None = Field(description="Null for a summary written for this request.")
    content: str
    speaker: str | None = Field(default=None, description="Who said it (a message's speaker), when known.")
    occurred_at: datetime | None
    session_id: str | None
    score: float | None = Field(description="Retrieval score of a snippet; null for added items.")
    role: ItemRole


class ContextResponse(BaseModel):
    context: str
    items: list[ContextItem] = Field(description="Snippets first, in rank order, then what assembly added.")
    tokens: int = Field(description="Tokens of ``context`` with the answer model's tokenizer.")
    abstained: bool = Field(description="No channel found evidence for the query (and the cubes did not fit the "
                            "budget whole): nothing is returned; ``routing.reasons.context`` says why.")
    full_context: bool = Field(description="Everything in the cubes fit the budget and is returned in time order.")
    evidence: Evidence | None = Field(default=None, description="What the abstention decision saw; null for a "
                                      "full context, which never abstains.")
    routing: Routing


class AnswerResponse(ContextResponse):
    answer: str | None = Field(description="Null when the context abstained (no LLM call is made).")
    model: str | None = Field(description="The model that answered.")


class TierInfo(BaseModel):
    axis: Literal["implementation", "reasoning", "capacity"] = Field(description="The BudgetMem axis it spends on.")
    does: str
    available: bool = Field(description="False when it needs an LLM and none is configured.")


class RoutingStats(BaseModel):
    """This process's routing counters for the caller's tenant since it started, and the tiers on offer."""

    requests: int
    hits: int
    misses: int
    hit_rate: float
    tiers: dict[str, dict[str, int]] = Field(description="Times each tier was chosen, per module.")
    mean_ms: dict[str, dict[str, float]] = Field(description="Mean measured ms per module and tier.")
    cache_backend: Literal["memory", "redis"]
    modules: dict[str, dict[str, TierInfo]] = Field(description="Every module's tiers, as this server offers them.")
