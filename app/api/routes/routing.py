"""Budget-routed context and answers, and the routing counters."""

from __future__ import annotations

from fastapi import APIRouter

from app.api import metrics
from app.api.deps import C, P
from app.schemas.routing import AnswerRequest, AnswerResponse, ContextRequest, ContextResponse, RoutingStats

router = APIRouter(prefix="/v1", tags=["routing"])


@router.post("/context", response_model=ContextResponse)
def context(body: ContextRequest, c: C, p: P) -> ContextResponse:
    result = c.routing.context(p, body)
    metrics.count_search("context", "routed", result.routing)
    return result


@router.post("/answer", response_model=AnswerResponse)
def answer(body: AnswerRequest, c: C, p: P) -> AnswerResponse:
    return c.routing.answer(p, body)


@router.get("/routing/stats", response_model=RoutingStats)
def stats(c: C, p: P) -> RoutingStats:
    return c.routing.stats(p)
