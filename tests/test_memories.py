"""Memory routes: batch add, list with filters and cursors, get, PATCH versions, soft delete, restore, messages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tests.conftest import Json, TenantCtx, add_memories, assert_error, list_all, search, search_ids

FULL: Json = {
    "content": "Dana prefers window seats on long flights",
    "memory_type": "semantic",
    "user_id": "dana",
    "agent_id": "travel-bot",
    "session_id": "s-42",
    "occurred_at": "2024-03-01T10:15:30.123456+05:30",
    "tags": ["travel", "preference", "ünïcode ✈"],
    "metadata": {"confidence": 0.9, "nested": {"list": [1, "two", None, True]}, "emoji": "🙂"},
    "source": {"type": "chat", "turn": 3, "url": "https://example.com/x?y=1"},
    "importance": 0.8125,
}

MEMORY_FIELDS = sorted([
    "id", "cube_id", "kind", "memory_type", "content", "content_hash", "user_id", "agent_id", "session_id",
    "occurred_at", "created_at", "updated_at", "tags", "metadata", "source", "status", "version", "importance",
    "access_count", "last_accessed_at", "embedding_model", "embedding_dim",
])


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_full_round_trip(m: Json, cube: str) -> None:
    assert set(MEMORY_FIELDS) <= set(m)
    for field in ("content", "memory_type", "user_id", "agent_id", "session_id", "tags", "metadata", "source",
                  "importance"):
        assert m[field] == FULL[field], field
    # Same instant, and an aware time (the offset is normalised, the instant is kept to the microsecond).
    assert ts(m["occurred_at"]) == datetime(2024, 3, 1, 4, 45, 30, 123456, tzinfo=UTC)
    assert ts(m["occurred_at"]).utcoffset() is not None
    assert m["cube_id"] == cube
    assert m["kind"] == "plaintext"
    assert m["status"] == "active"
    assert m["version"] == 1
    assert m["access_count"] == 0
    assert m["last_accessed_at"] is None
    assert m["embedding_model"] == "all-MiniLM-L6-v2"
    assert m["embedding_dim"] == 384
    assert len(m["content_hash"]) == 64


def test_batch_add_round_trips_every_field(tenant: TenantCtx, cube: str) -> None:
    before = datetime.now(UTC)
    created = add_memories(tenant, cube, FULL, {"content": "bare minimum"})
    after = datetime.now(UTC)
    full, bare = created
    assert_full_round_trip(full, cube)
    assert before <= ts(full["created_at"]) <= after
    assert ts(full["created_at"]) == ts(full["updated_at"])
    r = tenant.http.get(f"/v1/memories/{full['id']}")
    assert r.status_code == 200, r.text
    got = r.json()
    assert_full_round_trip(got, cube)
    assert got["id"] == full["id"]
    assert ts(got["created_at"]) == ts(full["created_at"])
    assert got["content_hash"] == full["content_hash"]
    # Defaults of an item with content only.
    assert bare["memory_type"] == "episodic"
    assert bare["user_id"] is None and bare["agent_id"] is None and bare["session_id"] is None
    assert bare["occurred_at"] is None
    assert bare["tags"] == [] and bare["metadata"] == {} and bare["source"] == {}
    assert bare["importance"] == 0.5
    assert tenant.http.get(f"/v1/memories/{bare['id']}").json()["content"] == "bare minimum"


def test_naive_occurred_at_is_taken_as_utc(tenant: TenantCtx, cube: str) -> None:
    m = add_memories(tenant, cube, {"content": "naive time", "occurred_at": "2023-12-31T23:59:59"})[0]
    got = tenant.http.get(f"/v1/memories/{m['id']}").json()
    assert ts(got["occurred_at"]) == datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert ts(m["occurred_at"]) == ts(got["occurred_at"])


def test_batch_keeps_the_order_of_the_request(tenant: TenantCtx, cube: str) -> None:
    contents = [f"memory number {i}" for i in range(20)]
    created = add_memories(tenant, cube, *contents)
    assert [m["content"] for m in created] == contents
    assert len({m["id"] for m in created}) == 20


def _seed_for_filters(tenant: TenantCtx, cube: str) -> dict[str, str]:
    items: list[Json] = [
        {"content": "m-a", "memory_type": "semantic", "user_id": "u1", "agent_id": "a1", "session_id": "s1",
         "tags": ["x", "y"]},
        {"content": "m-b", "memory_type": "episodic", "user_id": "u1", "agent_id": "a2", "session_id": "s2",
         "tags": ["y"]},
        {"content": "m-c", "memory_type": "procedural", "user_id": "u2", "agent_id": "a1", "session_id": "s1",
         "tags": []},
        {"content": "m-d", "memory_type": "semantic", "user_id": "u2", "agent_id": "a2", "session_id": "s2",
         "tags": ["x"]},
    ]
    created = add_memories(tenant, cube, *items)
    return {m["content"]: m["id"] for m in created}


def _contents(memories: list[Json]) -> list[str]:
    return sorted(m["content"] for m in memories)


def test_list_filters(tenant: TenantCtx, cube: str) -> None:
    ids = _seed_for_filters(tenant, cube)
    assert tenant.http.delete(f"/v1/memories/{ids['m-d']}").status_code == 200
    assert _contents(list_all(tenant, cube)) == ["m-a", "m-b", "m-c", "m-d"]
    assert _contents(list_all(tenant, cube, memory_type="semantic")) == ["m-a", "m-d"]
    assert _contents(list_all(tenant, cube, memory_type="procedural")) == ["m-c"]
    assert _contents(list_all(tenant, cube, user_id="u1")) == ["m-a", "m-b"]
    assert _contents(list_all(tenant, cube, agent_id="a1")) == ["m-a", "m-c"]
    assert _contents(list_all(tenant, cube, session_id="s2")) == ["m-b", "m-d"]
    assert _contents(list_all(tenant, cube, tag="x")) == ["m-a", "m-d"]
    assert _contents(list_all(tenant, cube, tag="y")) == ["m-a", "m-b"]
    assert _contents(list_all(tenant, cube, tag="nope")) == []
    assert _contents(list_all(tenant, cube, status="deleted")) == ["m-d"]
    assert _contents(list_all(tenant, cube, status="active")) == ["m-a", "m-b", "m-c"]
    assert _contents(list_all(tenant, cube, status="archived")) == []
    assert _contents(list_all(tenant, cube, user_id="u1", tag="x", memory_type="semantic")) == ["m-a"]
    assert _contents(list_all(tenant, cube, user_id="u2", status="active")) == ["m-c"]


def test_list_filters_on_occurred_at(tenant: TenantCtx, cube: str) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    add_memories(tenant, cube, *[
        {"content": f"day {d}", "occurred_at": (base + timedelta(days=d)).isoformat()} for d in range(5)
    ], "no time")
    got = list_all(tenant, cube, occurred_after="2024-01-02T00:00:00Z", occurred_before="2024-01-04T00:00:00Z")
    assert _contents(got) == ["day 1", "day 2"]


def test_keyset_pagination_pages_of_2_2_1(tenant: TenantCtx, cube: str) -> None:
    created: list[Json] = []
    for i in range(5):  # separate requests: distinct creation times, so the order is the insertion order
        created += add_memories(tenant, cube, f"paged memory {i}")
    pages: list[list[str]] = []
    cursor: str | None = None
    for _ in range(3):
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        r = tenant.http.get(f"/v1/cubes/{cube}/memories", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append([m["id"] for m in body["memories"]])
        cursor = body["next_cursor"]
        if len(pages) < 3:
            assert isinstance(cursor, str) and cursor
    assert cursor is None
    assert [len(p) for p in pages] == [2, 2, 1]
    flat = [mid for page in pages for mid in page]
    assert flat == [m["id"] for m in created]
    assert len(set(flat)) == 5


def test_pagination_exact_multiple_and_filters(tenant: TenantCtx, cube: str) -> None:
    for i in range(4):
        add_memories(tenant, cube, {"content": f"tagged {i}", "tags": ["t"]}, f"untagged {i}")
    r = tenant.http.get(f"/v1/cubes/{cube}/memories", params={"limit": 2, "tag": "t"})
    first = r.json()
    assert [m["content"] for m in first["memories"]] == ["tagged 0", "tagged 1"]
    r = tenant.http.get(f"/v1/cubes/{cube}/memories", params={"limit": 2, "tag": "t", "cursor": first["next_cursor"]})
    second = r.json()
    assert [m["content"] for m in second["memories"]] == ["tagged 2", "tagged 3"]
    assert second["next_cursor"] is None
    # Default limit returns everything with no cursor.
    r = tenant.http.get(f"/v1/cubes/{cube}/memories")
    assert len(r.json()["memories"]) == 8
    assert r.json()["next_cursor"] is None


def test_get_unknown_memory_is_404(tenant: TenantCtx) -> None:
    missing = str(uuid.uuid4())
    error = assert_error(tenant.http.get(f"/v1/memories/{missing}"), 404, "not_found")
    assert error["details"] == {"kind": "memory", "id": missing}
    for r in (tenant.http.patch(f"/v1/memories/{missing}", json={"content": "x"}),
              tenant.http.delete(f"/v1/memories/{missing}"),
              tenant.http.post(f"/v1/memories/{missing}/restore"),
              tenant.http.get(f"/v1/memories/{missing}/history")):
        assert_error(r, 404, "not_found")


def test_patch_makes_version_2_and_history_keeps_version_1(tenant: TenantCtx, cube: str) -> None:
    m = add_memories(tenant, cube, FULL)[0]
    r = tenant.http.patch(f"/v1/memories/{m['id']}", json={
        "content": "Dana now prefers aisle seats", "tags": ["travel"], "importance": 0.25, "reason": "user corrected",
    })
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["version"] == 2
    assert patched["content"] == "Dana now prefers aisle seats"
    assert patched["tags"] == ["travel"]
    assert patched["importance"] == 0.25
    assert patched["content_hash"] != m["content_hash"]
    # Untouched fields stay.
    for field in ("memory_type", "user_id", "agent_id", "session_id", "metadata", "source", "status", "id",
                  "cube_id"):
        assert patched[field] == m[field], field
    assert ts(patched["occurred_at"]) == ts(m["occurred_at"])
    assert ts(patched["created_at"]) == ts(m["created_at"])
    assert ts(patched["updated_at"]) > ts(m["updated_at"])
    assert tenant.http.get(f"/v1/memories/{m['id']}").json()["version"] == 2

    r = tenant.http.get(f"/v1/memories/{m['id']}/history")
    assert r.status_code == 200, r.text
    history = r.json()
    assert history["memory_id"] == m["id"]
    assert history["current_version"] == 2
    assert [v["version"] for v in history["versions"]] == [1]
    v1 = history["versions"][0]
    assert v1["reason"] == "user corrected"
    snap = v1["snapshot"]
    assert snap["content"] == FULL["content"]
    assert snap["tags"] == FULL["tags"]
    assert snap["importance"] == FULL["importance"]
    assert snap["metadata"] == FULL["metadata"]
    assert snap["version"] == 1
    assert snap["status"] == "active"
    assert snap["content_hash"] == m["content_hash"]


def test_patch_without_reason_uses_update_and_versions_accumulate(tenant: TenantCtx, cube: str) -> None:
    m = add_memories(tenant, cube, "v1 text")[0]
    assert tenant.http.patch(f"/v1/memories/{m['id']}", json={"content": "v2 text"}).status_code == 200
    r = tenant.http.patch(f"/v1/memories/{m['id']}", json={"metadata": {"k": "v"}, "reason": "enrich"})
    assert r.json()["version"] == 3
    assert r.json()["content"] == "v2 text"
    assert r.json()["metadata"] == {"k": "v"}
    history = tenant.http.get(f"/v1/memories/{m['id']}/history").json()
    assert history["current_version"] == 3
    assert [(v["version"], v["reason"], v["snapshot"]["content"]) for v in history["versions"]] == [
        (1, "update", "v1 text"), (2, "enrich", "v2 text"),
    ]


def test_patch_occurred_at_and_memory_type(tenant: TenantCtx, cube: str) -> None:
    m = add_memories(tenant, cube, "a fact")[0]
    r = tenant.http.patch(f"/v1/memories/{m['id']}", json={
        "occurred_at": "2020-02-29T12:00:00-08:00", "memory_type": "procedural", "source": {"by": "test"},
    })
    assert r.status_code == 200
    got = tenant.http.get(f"/v1/memories/{m['id']}").json()
    assert ts(got["occurred_at"]) == datetime(2020, 2, 29, 12, tzinfo=timezone(timedelta(hours=-8)))
    assert got["memory_type"] == "procedural"
    assert got["source"] == {"by": "test"}
    assert got["content"] == "a fact"


def test_patch_content_changes_what_search_finds(tenant: TenantCtx, cube: str) -> None:
    target, _, _ = add_memories(tenant, cube, "The cat sleeps on the red sofa",
                                "Quarterly revenue grew by twelve percent",
                                "The train to Lyon leaves at nine")
    query = "what does the budget spreadsheet say about tax deductions for home offices"
    assert target["id"] not in search_ids(tenant, query, [cube], top_k=1)
    cat = search(tenant, "cat sleeping on a sofa", [cube], top_k=3)
    assert cat[0]["memory"]["id"] == target["id"] and cat[0]["score"] > 0.8
    r = tenant.http.patch(f"/v1/memories/{target['id']}",
                          json={"content": "Home office costs are tax deductible per the budget spreadsheet"})
    assert r.status_code == 200
    assert search_ids(tenant, query, [cube], top_k=1) == [target["id"]]
    hits = search(tenant, "cat sleeping on a sofa", [cube], top_k=3)
    assert len(hits) == 3  # replaced in the index, not duplicated
    assert max(h["score"] for h in hits) < 0.2
    top = search(tenant, query, [cube], top_k=1)[0]
    assert top["memory"]["content"] == "Home office costs are tax deductible per the budget spreadsheet"
    assert top["memory"]["version"] == 2


def test_delete_is_soft_idempotent_and_restorable(tenant: TenantCtx, cube: str) -> None:
    m, other = add_memories(tenant, cube, "The wifi password is hunter2", "Lunch is at noon")
    assert search_ids(tenant, "wifi password", [cube], top_k=1) == [m["id"]]

    r = tenant.http.delete(f"/v1/memories/{m['id']}")
    assert r.status_code == 200, r.text
    deleted = r.json()
    assert deleted["status"] == "deleted"
    assert deleted["version"] == 2
    assert deleted["content"] == m["content"]
    got = tenant.http.get(f"/v1/memories/{m['id']}")
    assert got.status_code == 200
    assert got.json()["status"] == "deleted"
    assert search_ids(tenant, "wifi password", [cube]) == [other["id"]]

    again = tenant.http.delete(f"/v1/memories/{m['id']}")
    assert again.status_code == 200
    assert again.json()["status"] == "deleted"
    assert again.json()["version"] == 2

    history = tenant.http.get(f"/v1/memories/{m['id']}/history").json()
    assert [(v["version"], v["reason"], v["snapshot"]["status"]) for v in history["versions"]] == [
        (1, "delete", "active"),
    ]

    assert_error(tenant.http.patch(f"/v1/memories/{m['id']}", json={"content": "nope"}), 409, "conflict")
    assert tenant.http.get(f"/v1/memories/{m['id']}").json()["version"] == 2

    r = tenant.http.post(f"/v1/memories/{m['id']}/restore")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    assert r.json()["version"] == 3
    assert search_ids(tenant, "wifi password", [cube], top_k=1) == [m["id"]]
    history = tenant.http.get(f"/v1/memories/{m['id']}/history").json()
    assert [(v["version"], v["reason"], v["snapshot"]["status"]) for v in history["versions"]] == [
        (1, "delete", "active"), (2, "restore", "deleted"),
    ]


def test_restore_of_an_active_memory_is_409(tenant: TenantCtx, cube: str) -> None:
    m = add_memories(tenant, cube, "still here")[0]
    error = assert_error(tenant.http.post(f"/v1/memories/{m['id']}/restore"), 409, "conflict")
    assert error["details"] == {"id": m["id"]}
    got = tenant.http.get(f"/v1/memories/{m['id']}").json()
    assert got["version"] == 1
    assert tenant.http.get(f"/v1/memories/{m['id']}/history").json()["versions"] == []


def test_history_of_a_new_memory_is_empty(tenant: TenantCtx, cube: str) -> None:
    m = add_memories(tenant, cube, "fresh")[0]
    r = tenant.http.get(f"/v1/memories/{m['id']}/history")
    assert r.status_code == 200
    assert r.json() == {"memory_id": m["id"], "current_version": 1, "versions": []}


def test_messages_become_episodic_memories(tenant: TenantCtx, cube: str) -> None:
    r = tenant.http.post(f"/v1/cubes/{cube}/messages", json={
        "session_id": "conv-1", "user_id": "u-9", "agent_id": "assistant-1",
        "messages": [
            {"role": "user", "speaker": "Caroline", "content": "I adopted a puppy named Biscuit yesterday",
             "timestamp": "2023-05-08T13:56:00+00:00", "id": "D1:1"},
            {"role": "assistant", "content": "Congratulations on Biscuit!", "timestamp": "2023-05-08T13:57:00Z"},
            {"role": "user", "content": "no time or id"},
        ],
    })
    assert r.status_code == 201, r.text
    first, second, third = r.json()["memories"]
    assert first["content"] == "I adopted a puppy named Biscuit yesterday"
    assert first["memory_type"] == "episodic"
    assert first["session_id"] == "conv-1"
    assert first["user_id"] == "u-9"
    assert first["agent_id"] == "assistant-1"
    assert ts(first["occurred_at"]) == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert first["metadata"] == {"role": "user", "speaker": "Caroline", "message_id": "D1:1"}
    assert first["source"] == {"type": "message", "role": "user"}
    assert ts(second["occurred_at"]) == datetime(2023, 5, 8, 13, 57, tzinfo=UTC)
    assert second["metadata"] == {"role": "assistant"}
    assert third["occurred_at"] is None
    assert third["metadata"] == {"role": "user"}
    stored = tenant.http.get(f"/v1/memories/{first['id']}").json()
    assert stored["metadata"] == first["metadata"]
    assert ts(stored["occurred_at"]) == ts(first["occurred_at"])
    assert _contents(list_all(tenant, cube, session_id="conv-1")) == sorted(
        ["I adopted a puppy named Biscuit yesterday", "Congratulations on Biscuit!", "no time or id"])
    assert search_ids(tenant, "what is the name of Caroline's dog?", [cube], top_k=1) == [first["id"]]
