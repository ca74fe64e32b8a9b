"""Search: ranking, filters, several cubes, top_k, deleted memories, response shape."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from app.graph.extract import entities
from tests.conftest import Json, TenantCtx, add_memories, assert_error, make_cube, search, search_ids

FACTS = [
    "Alice is allergic to peanuts",
    "The office printer on floor 3 is out of toner",
    "Bob's daughter plays the violin in the school orchestra",
    "The quarterly board meeting moved to Thursday at 4pm",
    "Our production database runs PostgreSQL 16 on two replicas",
    "Maria learned to scuba dive in Thailand last summer",
]

QUERIES = [
    ("what food must Alice avoid?", 0),
    ("the printer has no toner", 1),
    ("which instrument does Bob's kid play?", 2),
    ("when is the board meeting?", 3),
    ("which database version is in production?", 4),
    ("where did Maria learn diving?", 5),
]


def assert_agent_order(hits: list[Json], query: str) -> None:
    """Hits come by score, except that a hit naming someone or something the query does not (Bob, Maria,
    PostgreSQL for a question about Alice) moves 3 places down (app.memory.ranking.by_subject)."""
    asked = {n.lower() for n in entities(query)}
    keys = []
    for rank, h in enumerate(sorted(hits, key=lambda h: -h["score"])):
        names = {n.lower() for n in entities(h["memory"]["content"])}
        other = bool(asked) and not (names & asked) and bool(names - asked)
        keys.append((rank + (3 if other else 0), rank, h["memory"]["id"]))
    assert [h["memory"]["id"] for h in hits] == [i for _, _, i in sorted(keys)]


def test_top_hit_is_the_crafted_memory(tenant: TenantCtx, cube: str) -> None:
    ids = [m["id"] for m in add_memories(tenant, cube, *FACTS)]
    for query, expected in QUERIES:
        hits = search(tenant, query, [cube], top_k=3)
        assert hits[0]["memory"]["id"] == ids[expected], query
        assert hits[0]["memory"]["content"] == FACTS[expected]
        assert len(hits) == 3
        scores = [h["score"] for h in hits]
        assert_agent_order(hits, query)
        assert 0.3 < scores[0] <= 1.0
        assert scores[0] == max(scores) and scores[0] > scores[1]


def test_response_shape(tenant: TenantCtx, cube: str) -> None:
    add_memories(tenant, cube, *FACTS)
    r = tenant.http.post("/v1/search", json={"query": "Alice", "cube_ids": [cube]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"results", "took_ms"} <= set(body)
    assert isinstance(body["took_ms"], float) and body["took_ms"] >= 0
    assert len(body["results"]) == 6  # default top_k is 10; the cube has 6
    for hit in body["results"]:
        assert {"memory", "score"} <= set(hit)
        assert hit["memory"]["cube_id"] == cube
        assert hit["memory"]["status"] == "active"


def test_exact_content_scores_one(tenant: TenantCtx, cube: str) -> None:
    ids = [m["id"] for m in add_memories(tenant, cube, *FACTS)]
    hit = search(tenant, FACTS[4], [cube], top_k=1)[0]
    assert hit["memory"]["id"] == ids[4]
    assert abs(hit["score"] - 1.0) < 1e-4


def test_top_k_is_respected(tenant: TenantCtx, cube: str) -> None:
    add_memories(tenant, cube, *FACTS)
    for k in (1, 2, 5, 6, 50):
        assert len(search(tenant, "meeting", [cube], top_k=k)) == min(k, 6)


def test_empty_cube_returns_nothing(tenant: TenantCtx, cube: str) -> None:
    assert search(tenant, "anything at all", [cube]) == []


def test_filters(tenant: TenantCtx, cube: str) -> None:
    base = datetime(2024, 6, 1, tzinfo=UTC)
    items: list[Json] = [
        {"content": "Planning the trip to Japan in spring", "memory_type": "episodic", "session_id": "s1",
         "user_id": "u1", "agent_id": "a1", "tags": ["travel"], "occurred_at": base.isoformat()},
        {"content": "Booked flights to Tokyo for April", "memory_type": "episodic", "session_id": "s2",
         "user_id": "u2", "agent_id": "a1", "tags": ["travel", "booking"],
         "occurred_at": (base + timedelta(days=1)).isoformat()},
        {"content": "Japan trips need a rail pass for the bullet train", "memory_type": "procedural",
         "session_id": "s1", "user_id": "u1", "agent_id": "a2", "tags": ["howto"],
         "occurred_at": (base + timedelta(days=2)).isoformat()},
        {"content": "Tokyo is the capital of Japan", "memory_type": "semantic", "session_id": "s3",
         "user_id": "u2", "agent_id": "a2", "tags": ["travel"]},
    ]
    ids = [m["id"] for m in add_memories(tenant, cube, *items)]
    q = "travelling to Japan and Tokyo"

    def found(filters: Json) -> list[str]:
        return sorted(search_ids(tenant, q, [cube], top_k=10, filters=filters))

    assert found({}) == sorted(ids)
    assert found({"session_id": "s1"}) == sorted([ids[0], ids[2]])
    assert found({"memory_type": "semantic"}) == [ids[3]]
    assert found({"memory_type": "procedural"}) == [ids[2]]
    assert found({"tag": "travel"}) == sorted([ids[0], ids[1], ids[3]])
    assert found({"tag": "booking"}) == [ids[1]]
    assert found({"user_id": "u2"}) == sorted([ids[1], ids[3]])
    assert found({"agent_id": "a2"}) == sorted([ids[2], ids[3]])
    assert found({"occurred_after": (base + timedelta(hours=1)).isoformat()}) == sorted([ids[1], ids[2]])
    assert found({"occurred_before": (base + timedelta(days=1)).isoformat()}) == [ids[0]]
    assert found({"occurred_after": base.isoformat(), "occurred_before": (base + timedelta(days=2)).isoformat()}
                 ) == sorted([ids[0], ids[1]])
    assert found({"user_id": "u1", "tag": "travel"}) == [ids[0]]
    assert found({"status": "active"}) == sorted(ids)
    assert found({"session_id": "no-such-session"}) == []
    # A filter narrows the candidates, top_k still applies and the order is by score.
    filtered = search(tenant, "bullet train rail pass", [cube], top_k=1, filters={"user_id": "u1"})
    assert [h["memory"]["id"] for h in filtered] == [ids[2]]


def test_multi_cube_search_merges_by_score(tenant: TenantCtx, cube: str) -> None:
    second = make_cube(tenant, "second")
    third = make_cube(tenant, "third")
    a = add_memories(tenant, cube, FACTS[0], FACTS[1], FACTS[2])
    b = add_memories(tenant, second, FACTS[3], FACTS[4], FACTS[5])
    add_memories(tenant, third, "Alice is allergic to peanuts and tree nuts")  # not searched
    hits = search(tenant, "what food must Alice avoid?", [cube, second], top_k=6)
    assert len(hits) == 6
    assert hits[0]["memory"]["id"] == a[0]["id"]
    assert {h["memory"]["id"] for h in hits} == {m["id"] for m in a + b}
    assert_agent_order(hits, "what food must Alice avoid?")
    assert search_ids(tenant, "where did Maria learn diving?", [cube, second], top_k=1) == [b[2]["id"]]
    assert search_ids(tenant, "where did Maria learn diving?", [cube], top_k=1) != [b[2]["id"]]
    # The same cube twice counts once.
    assert len(search(tenant, "Alice", [cube, cube], top_k=10)) == 3


def test_deleted_memories_are_never_returned(tenant: TenantCtx, cube: str) -> None:
    mems = add_memories(tenant, cube, *FACTS)
    for m in mems[:3]:
        assert tenant.http.delete(f"/v1/memories/{m['id']}").status_code == 200
    remaining = {m["id"] for m in mems[3:]}
    for query, _ in QUERIES:
        assert set(search_ids(tenant, query, [cube], top_k=10)) == remaining
    # The filtered path (Postgres picks the candidate vectors) excludes them too.
    assert set(search_ids(tenant, FACTS[0], [cube], top_k=10, filters={"memory_type": "episodic"})) == remaining
    # Deleted and then restored: searchable again, once.
    assert tenant.http.post(f"/v1/memories/{mems[0]['id']}/restore").status_code == 200
    assert search_ids(tenant, FACTS[0], [cube], top_k=10).count(mems[0]["id"]) == 1


def test_unknown_cube_in_search_is_404(tenant: TenantCtx, cube: str) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    error = assert_error(tenant.http.post("/v1/search", json={"query": "x", "cube_ids": [cube, missing]}),
                         404, "not_found")
    assert error["details"] == {"kind": "cube", "id": missing}


def test_search_counts_access(tenant: TenantCtx, cube: str) -> None:
    target = add_memories(tenant, cube, *FACTS)[0]
    assert search_ids(tenant, "what food must Alice avoid?", [cube], top_k=1) == [target["id"]]
    deadline = time.monotonic() + 5
    got: Json = {}
    while time.monotonic() < deadline:  # counted after the response is sent
        got = tenant.http.get(f"/v1/memories/{target['id']}").json()
        if got["access_count"] == 1:
            break
        time.sleep(0.05)
    assert got["access_count"] == 1
    assert got["last_accessed_at"] is not None
