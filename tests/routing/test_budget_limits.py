"""Every budget limit holds on a real corpus: a property test over random budgets and questions.

Two corpora, each under its own name: the written conversation of ``corpus.py``, and the first 200 turns of
LoCoMo conversation 0 (skipped with the reason when the shared data set is missing, never replaced).
Budgets are drawn from a fixed seed, so a failure replays exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.activation.model import ModelSpec
from app.activation.tokens import TokenCounter
from tests.conftest import LiveServer, TenantCtx, make_cube, new_tenant
from tests.routing.corpus import LOCOMO, conversation, ingest, locomo_turns

Json = dict[str, Any]
QUESTIONS = [
    "When did Caroline go to the LGBTQ support group?", "What did Melanie paint?", "pottery class",
    "What fields would Caroline be likely to pursue in her education?", "Where did Melanie go camping?",
    "How many children does Melanie have?", "What is Caroline's identity?", "kids beach",
]
TIERS = ("low", "mid", "high")


@pytest.fixture(scope="module", params=["written", "locomo"])
def corpus(request: pytest.FixtureRequest, live_server: LiveServer,
           admin: httpx.Client) -> Iterator[tuple[TenantCtx, str]]:
    """The written conversation, and the first 200 LoCoMo turns: each under its own name, the second skipped
    (never replaced) when the shared data set is missing."""
    turns = conversation() if request.param == "written" else locomo_turns(200)
    if turns is None:
        pytest.skip(f"LoCoMo is not at {LOCOMO}: the budget limits are checked on the written conversation only")
    t = new_tenant(live_server, admin)
    cube = make_cube(t, request.param)
    ingest(t, cube, turns)
    yield t, cube
    t.http.close()


@pytest.fixture(scope="module")
def tokens(live_server: LiveServer) -> TokenCounter:
    """The answer model's tokenizer, loaded here on its own: the test recounts what the service counted."""
    s = live_server.settings
    return TokenCounter(ModelSpec(name=s.activation_model, models_dir=s.models_dir))


def random_budget(rng: random.Random) -> Json:
    budget: Json = {"max_tokens": int(10 ** rng.uniform(0, 3.5))}
    if rng.random() < 0.5:
        budget["max_llm_calls"] = rng.randint(0, 3)
    if rng.random() < 0.3:
        budget["max_ms"] = rng.choice([1.0, 50.0, 10_000.0])
    if rng.random() < 0.6:
        budget["tiers"] = {m: rng.choice(TIERS) for m in ("retrieval", "context") if rng.random() < 0.7}
    return budget


def test_token_and_call_limits_hold_for_random_budgets(corpus: tuple[TenantCtx, str], tokens: TokenCounter) -> None:
    t, cube = corpus
    rng = random.Random(20261126)
    seen_tiers: set[tuple[str, str]] = set()
    for _ in range(40):
        budget = random_budget(rng)
        query = rng.choice(QUESTIONS)
        r = t.http.post("/v1/context", json={"query": query, "cube_ids": [cube], "top_k": rng.randint(1, 30),
                                             "budget": budget, "use_cache": False})
        assert r.status_code == 200, (budget, r.text)
        body = r.json()
        # Exact: the service's count is the tokenizer's count of the text it returned, and within the limit.
        assert body["tokens"] == tokens.count(body["context"]) <= budget["max_tokens"], (budget, query)
        assert body["routing"]["cost"]["llm_calls"] <= budget.get("max_llm_calls", 100)
        assert body["routing"]["cost"]["tokens"] == body["tokens"]
        assert len(body["context"].splitlines()) == len(body["items"])
        for module, tier in budget.get("tiers", {}).items():
            # Forced tiers hold, except that a cube which fits the limit whole is served whole (and says so).
            reason = body["routing"]["reasons"][module]
            assert body["routing"]["tiers"][module] == tier
            assert reason.startswith("rule: full context") if body["full_context"] else reason == "forced"
        if body["abstained"]:
            assert (body["items"], body["context"]) == ([], "")
        seen_tiers.add((body["routing"]["tiers"]["retrieval"], body["routing"]["tiers"]["context"]))
    assert len(seen_tiers) >= 5  # the draw exercised most tier combinations, not one path


def test_max_ms_steers_routed_tiers_to_the_cheap_ones(corpus: tuple[TenantCtx, str]) -> None:
    t, cube = corpus
    query = "When did Caroline go to the LGBTQ support group?"  # the rules want high retrieval for it
    free = t.http.post("/v1/context", json={"query": query, "cube_ids": [cube], "use_cache": False,
                                            "budget": "auto"}).json()["routing"]
    assert free["tiers"]["retrieval"] == "high"
    tight = t.http.post("/v1/context", json={"query": query, "cube_ids": [cube], "use_cache": False,
                                             "budget": {"max_ms": 5}}).json()["routing"]
    # Expected costs (the rules' table) put only low retrieval within 5 ms; the warning says what was dropped.
    assert tight["tiers"]["retrieval"] == "low"
    assert "retrieval: mid, high expected over max_ms 5" in tight["warnings"]
