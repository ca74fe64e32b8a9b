"""Budget-tier routing through both clients against the live server: context, answer (abstaining, so no
model loads), search and messages with a budget, the routing stats, and a refused budget; and the request
bodies the SDK builds, over a mock transport."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import memcubed
import pytest

from tests.sdk.sdk_helpers import CUBE_ID, Recorder

T0 = datetime(2023, 5, 8, 13, 0, tzinfo=UTC)
TURNS = [
    ("Caroline", "I went to the LGBTQ support group yesterday and it was so powerful."),
    ("Melanie", "I painted a sunrise over the lake last year."),
    ("Caroline", "I moved to Boston in 2020."),
]
Q = "When did Caroline go to the LGBTQ support group?"


def _turns() -> list[dict[str, object]]:
    return [{"role": "user", "speaker": sp, "content": text, "timestamp": T0 + timedelta(minutes=i)}
            for i, (sp, text) in enumerate(TURNS)]


def test_context_answer_search_messages_and_stats(live_client: memcubed.Client) -> None:
    client = live_client
    cube = client.cubes.create("routing")
    stored = client.messages.add(cube.id, "s1", _turns(), budget="mid")
    # mid extraction: the three turns, then the rule-based fact from "I moved to Boston in 2020."
    assert [m.content for m in stored] == [text for _, text in TURNS] + ["Caroline moved to Boston in 2020"]
    assert stored[-1].memory_type == "semantic" and stored[-1].source == {"type": "extraction", "tier": "mid"}
    assert (stored[0].metadata["entities"], stored[2].metadata["entities"]) == (["LGBTQ"], ["Boston"])
    assert "entities" not in stored[1].metadata  # no named thing in it
    client.cubes.wait_enriched(cube.id, timeout=60)

    ctx = client.context(Q, cube.id, budget="mid")
    assert isinstance(ctx, memcubed.ContextResponse)
    assert (ctx.full_context, ctx.abstained) == (True, False)  # four short memories fit the default budget
    assert ctx.context.splitlines()[0] == ("- [2023-05-08] Caroline: I went to the LGBTQ support group yesterday "
                                           "and it was so powerful.")
    assert ctx.routing.tiers == {"retrieval": "mid", "context": "mid"} and ctx.routing.cache.hit is False
    assert [item.role for item in ctx.items] == ["snippet"] * 4
    again = client.context(Q, cube.id, budget="mid")
    assert (again.routing.cache.hit, again.routing.cache.kind) == (True, "exact")
    assert ctx.routing.features is not None and again.routing.features is None  # what the router saw; no router
    assert (ctx.routing.features["cube_size"], ctx.routing.features["cached"]) == (4, False)

    limited = client.context(Q, cube.id, budget={"max_tokens": 8, "tiers": {"retrieval": "high"}},
                             use_cache=False)
    assert limited.tokens <= 8 and limited.routing.reasons["retrieval"] == "forced"

    # Off topic in a cube that does not fit 16 tokens whole: it abstains (a cube that fits never does).
    off = client.answer("What is the capital of Mongolia?", [cube.id], budget={"max_tokens": 16})
    assert isinstance(off, memcubed.AnswerResponse)
    assert (off.abstained, off.answer, off.model, off.items) == (True, None, None, [])
    assert off.evidence is not None and off.evidence.overlap == 0.0

    found = client.search("LGBTQ support group", cube.id, top_k=2, budget="low", use_cache=False)
    assert found.routing is not None and found.routing.tiers == {"retrieval": "low"}
    assert found.memories[0].id == stored[0].id
    assert client.search("LGBTQ support group", cube.id).routing is None

    stats = client.routing.stats()
    assert isinstance(stats, memcubed.RoutingStats)
    assert (stats.requests, stats.hits, stats.misses) == (5, 1, 4)
    assert stats.tiers["retrieval"]["high"] == 1 and stats.tiers["retrieval"]["low"] == 1
    assert sum(stats.tiers["retrieval"].values()) == 4 and stats.mean_ms["retrieval"]["high"] > 0

    with pytest.raises(memcubed.ValidationError) as refused:
        client.answer(Q, cube.id, budget="high")  # no LLM on the test server: refused, never downgraded
    assert "needs an LLM" in str(refused.value)


async def test_async_client_routes(live_aclient: memcubed.AsyncClient) -> None:
    client = live_aclient
    cube = await client.cubes.create("routing-async")
    written = await client.messages.add_detailed(cube.id, "s1", _turns(), budget="low")
    assert written.routing is not None and written.routing.tiers == {"extraction": "low"}
    assert len(written.memories) == 3  # low: the raw turns only
    ctx = await client.context(Q, [cube.id], budget="low", use_cache=False)
    assert ctx.routing.tiers == {"retrieval": "low", "context": "low"} and ctx.full_context is True
    assert ctx.context.splitlines()[0] == "- [2023-05-08] Caroline: I went to the LGBTQ support group yesterday " \
                                          "and it was so powerful."
    off = await client.answer("What is the capital of Mongolia?", cube.id, budget={"max_tokens": 16})
    assert off.abstained is True and off.routing.cost.llm_calls == 0
    found = await client.search(Q, cube.id, budget="mid")
    assert found.routing is not None and found.routing.tiers == {"retrieval": "mid"}
    stats = await client.routing.stats()
    assert (stats.requests, stats.misses) == (3, 3)


def test_budget_requests_are_shaped_for_the_server(mock_client: memcubed.Client, recorder: Recorder) -> None:
    def last_body() -> dict[str, object]:
        return dict(json.loads(recorder.bodies[-1]))

    found = mock_client.search("q", CUBE_ID, budget={"max_tokens": 100, "tiers": {"retrieval": "low"}},
                               use_cache=False)
    assert isinstance(found, memcubed.SearchResponse)
    assert last_body() == {"query": "q", "cube_ids": [CUBE_ID], "top_k": 10, "use_cache": False,
                           "budget": {"max_tokens": 100, "tiers": {"retrieval": "low"}}}  # no mode with a budget
    mock_client.search("q", CUBE_ID)
    assert last_body() == {"query": "q", "cube_ids": [CUBE_ID], "top_k": 10, "mode": "fast"}
    ctx = mock_client.context("q", [CUBE_ID], top_k=3, budget="low")
    assert last_body() == {"query": "q", "cube_ids": [CUBE_ID], "top_k": 3, "budget": "low"}
    assert (ctx.tokens, ctx.items[0].role, ctx.routing.cost.ms["total"]) == (12, "snippet", 11.0)
    answer = mock_client.answer("q", CUBE_ID)
    assert last_body() == {"query": "q", "cube_ids": [CUBE_ID], "top_k": 10}  # the server's default: auto
    assert (answer.answer, answer.model) == ("Rex", "gpt-4o-mini")
    mock_client.messages.add(CUBE_ID, "s1", [{"role": "user", "content": "x"}], budget="mid")
    assert last_body()["budget"] == "mid"
    assert mock_client.routing.stats().hit_rate == 0.5
