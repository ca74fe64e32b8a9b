"""The routed-result cache: exact and semantic hits, invalidation by every kind of write to the cube, the
stats route, and isolation between tenants and cube sets."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

from app.budget.cache import ResultCache
from tests.conftest import TenantCtx, make_cube, wait_enriched
from tests.workers.helpers import consolidate, wait_job

Json = dict[str, Any]
Q = "When did Caroline go to the LGBTQ support group?"
TURNS = [
    ("Caroline", "I went to the LGBTQ support group yesterday and it was so powerful."),
    ("Melanie", "Wow, what did they talk about there?"),
    ("Caroline", "Transgender stories, and how people found courage to come out."),
    ("Melanie", "I painted a sunrise over the lake last year, it calms me."),
    ("Caroline", "I want to study counseling and work in mental health."),
    ("Melanie", "We took the kids camping at the beach last weekend."),
]


def seeded(t: TenantCtx) -> tuple[str, list[Json]]:
    cube = make_cube(t)
    r = t.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": "s1", "messages": [
        {"role": "user", "speaker": sp, "content": text, "timestamp": f"2023-05-08T13:{50 + i}:00Z"}
        for i, (sp, text) in enumerate(TURNS)]})
    assert r.status_code == 201, r.text
    wait_enriched(t, cube)
    return cube, list(r.json()["memories"])


def ask(t: TenantCtx, cube: str, query: str = Q, route: str = "context", **extra: Any) -> Json:
    r = t.http.post(f"/v1/{route}", json={"query": query, "cube_ids": [cube], "budget": "mid", **extra})
    assert r.status_code == 200, r.text
    return dict(r.json())


def cache_of(body: Json) -> Json:
    return dict(body["routing"]["cache"])


def test_exact_then_semantic_hits_and_stats(tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    cube, _ = seeded(tenant)
    first = ask(tenant, cube)
    assert cache_of(first) == {"hit": False, "kind": None}
    again = ask(tenant, cube, "  when did caroline go to the LGBTQ support group ")  # same question, normalised
    assert cache_of(again) == {"hit": True, "kind": "exact"}
    assert (again["context"], again["items"], again["tokens"]) == (first["context"], first["items"], first["tokens"])
    assert again["routing"]["tiers"] == first["routing"]["tiers"]
    assert again["routing"]["reasons"] == {"retrieval": "cache hit", "context": "cache hit"}
    assert first["routing"]["features"]["question_word"] == "when" and again["routing"]["features"] is None
    assert set(again["routing"]["cost"]["ms"]) == {"total"} and again["routing"]["cost"]["llm_calls"] == 0
    para = ask(tenant, cube, "When did Caroline attend the LGBTQ support group?")  # cosine 0.99
    assert cache_of(para) == {"hit": True, "kind": "semantic"} and para["context"] == first["context"]
    other = ask(tenant, cube, "When did Melanie go to the LGBTQ support group?")  # cosine 0.68: a miss
    assert cache_of(other) == {"hit": False, "kind": None}
    # Another budget, route or use_cache=false is another entry (or none).
    assert cache_of(ask(tenant, cube, budget="low")) == {"hit": False, "kind": None}
    assert cache_of(ask(tenant, cube, use_cache=False)) == {"hit": False, "kind": None}
    r = tenant.http.post("/v1/search", json={"query": Q, "cube_ids": [cube], "budget": "mid"})
    assert cache_of(r.json()) == {"hit": False, "kind": None}
    r = tenant.http.post("/v1/search", json={"query": Q, "cube_ids": [cube], "budget": "mid"})
    assert cache_of(r.json()) == {"hit": True, "kind": "exact"} and r.json()["results"]

    stats = tenant.http.get("/v1/routing/stats").json()
    assert (stats["requests"], stats["hits"], stats["misses"], stats["hit_rate"]) == (8, 3, 5, 0.375)
    assert stats["tiers"] == {"retrieval": {"mid": 4, "low": 1}, "context": {"mid": 3, "low": 1}}
    assert set(stats["mean_ms"]["retrieval"]) == {"mid", "low"} and stats["mean_ms"]["retrieval"]["mid"] > 0
    assert stats["cache_backend"] == "memory"
    assert {m: {t: (i["axis"], i["available"]) for t, i in tiers.items()} for m, tiers in stats["modules"].items()} == {
        "retrieval": {"low": ("implementation", True), "mid": ("implementation", True),
                      "high": ("implementation", True)},
        "context": {"low": ("capacity", True), "mid": ("capacity", True), "high": ("capacity", True)},
        "extraction": {"low": ("implementation", True), "mid": ("implementation", True), "high": ("reasoning", False)},
        "answer": {"low": ("reasoning", True), "mid": ("reasoning", False), "high": ("reasoning", False)},
    }
    # Per tenant: another tenant's counters and cache are its own.
    assert other_tenant.http.get("/v1/routing/stats").json()["requests"] == 0


def test_any_write_to_the_cube_invalidates(tenant: TenantCtx) -> None:
    cube, turns = seeded(tenant)
    other, _ = seeded(tenant)

    def miss_then_hit() -> Json:
        wait_enriched(tenant, cube)  # enrichment catching up is a change too: let it settle
        body = ask(tenant, cube)
        assert cache_of(ask(tenant, cube)) == {"hit": True, "kind": "exact"}
        return body

    before = miss_then_hit()
    ask(tenant, other)
    # a consolidation job (six turns in one session: it writes a session summary)
    job = wait_job(tenant.http, consolidate(tenant, cube)["id"])
    assert job["status"] == "done", job
    after = ask(tenant, cube)
    assert cache_of(after) == {"hit": False, "kind": None}
    assert "Summary of session s1" in after["context"] and "Summary of session s1" not in before["context"]
    miss_then_hit()
    # add
    r = tenant.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [
        {"content": "Caroline went back to the LGBTQ support group in June", "occurred_at": "2023-06-10T00:00:00Z"}]})
    assert r.status_code == 201, r.text
    assert cache_of(ask(tenant, cube)) == {"hit": False, "kind": None}
    assert cache_of(ask(tenant, other)) == {"hit": True, "kind": "exact"}  # a write elsewhere changes nothing
    miss_then_hit()
    # update of the content
    r = tenant.http.patch(f"/v1/memories/{turns[0]['id']}", json={"content": "I went to the LGBTQ support group."})
    assert r.status_code == 200, r.text
    assert cache_of(ask(tenant, cube)) == {"hit": False, "kind": None}
    miss_then_hit()
    # update of metadata only (no index change)
    r = tenant.http.patch(f"/v1/memories/{turns[0]['id']}", json={"tags": ["pride"]})
    assert r.status_code == 200, r.text
    assert cache_of(ask(tenant, cube)) == {"hit": False, "kind": None}
    miss_then_hit()
    # delete
    assert tenant.http.delete(f"/v1/memories/{turns[3]['id']}").status_code == 200
    assert cache_of(ask(tenant, cube)) == {"hit": False, "kind": None}
    miss_then_hit()


def test_answers_are_cached_too(tenant: TenantCtx) -> None:
    cube, _ = seeded(tenant)
    # No LLM on this server; the question is off topic and the cube does not fit 16 tokens whole, so it abstains
    # without loading any model, and the abstention is what is cached.
    off = ask(tenant, cube, "What is the capital of Mongolia?", route="answer", budget={"max_tokens": 16})
    assert (off["abstained"], off["answer"], cache_of(off)) == (True, None, {"hit": False, "kind": None})
    again = ask(tenant, cube, "What is the capital of Mongolia?", route="answer", budget={"max_tokens": 16})
    assert (again["abstained"], cache_of(again)) == (True, {"hit": True, "kind": "exact"})


def test_redis_generations_invalidate_across_processes() -> None:
    """Two caches on one Redis stand for two API processes: a write seen by one makes the other's entry stale."""
    from tests.workers.test_redis_worker import REDIS_URL, redis_up

    if not redis_up():
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"memcubed-test-{uuid.uuid4().hex[:8]}"
    a = ResultCache(REDIS_URL, prefix, capacity=8, similarity=0.95)
    b = ResultCache(REDIS_URL, prefix, capacity=8, similarity=0.95)
    cube = uuid.uuid4()
    vec = np.ones(4, dtype=np.float32) / 2.0
    b.put("scope", (cube,), b.generations.get((cube,)), "Where is Alice?", vec, "cached answer")
    assert b.get_exact("scope", (cube,), "where is alice") == "cached answer"
    assert b.get_semantic("scope", (cube,), vec) == "cached answer"
    assert a.backend == b.backend == "redis"
    a.invalidate(cube)  # the write happened in the other process
    assert b.get_exact("scope", (cube,), "Where is Alice?") is None
    assert b.get_semantic("scope", (cube,), vec) is None
    a.generations.redis.delete(f"{prefix}:cachegen:{cube}")


def test_unreachable_redis_means_no_caching_not_failures() -> None:
    cache = ResultCache("redis://127.0.0.1:1/0", "memcubed-test", capacity=8, similarity=0.95)
    cube = uuid.uuid4()
    generations = cache.generations.get((cube,))
    assert generations is None
    cache.put("scope", (cube,), generations, "Where is Alice?", None, "value")
    assert cache.get_exact("scope", (cube,), "Where is Alice?") is None and not cache.holds("scope")
    cache.invalidate(cube)  # logged, not raised: the write it follows has committed
