"""Cube export (JSON Lines) and import: the round trip loses nothing."""

from __future__ import annotations

import json
from datetime import datetime

import httpx

from tests.conftest import Json, TenantCtx, add_memories, assert_error, list_all, make_cube, search

NDJSON = {"Content-Type": "application/x-ndjson"}


def export(t: TenantCtx, cube: str) -> tuple[Json, list[Json]]:
    r = t.http.get(f"/v1/cubes/{cube}/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert r.headers["content-disposition"] == f'attachment; filename="cube-{cube}.jsonl"'
    assert r.text.endswith("\n")
    lines = [json.loads(line) for line in r.text.splitlines()]
    return lines[0], lines[1:]


def import_(t: TenantCtx, cube: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return t.http.post(f"/v1/cubes/{cube}/import", content=body, headers={**NDJSON, **(headers or {})})


def seed(t: TenantCtx, cube: str) -> list[Json]:
    mems = add_memories(
        t, cube,
        {"content": "Priya runs the Berlin marathon every September", "memory_type": "episodic",
         "user_id": "priya", "agent_id": "coach", "session_id": "s-1", "occurred_at": "2023-09-24T09:15:00+02:00",
         "tags": ["sport", "running"], "metadata": {"distance_km": 42.195, "pb": "3:41:07"},
         "source": {"type": "chat", "turn": 12}, "importance": 0.9},
        {"content": "Priya is vegetarian", "memory_type": "semantic", "tags": ["food"]},
        {"content": "To reset the router hold the button for ten seconds", "memory_type": "procedural"},
        {"content": "Priya's cat is called Mango", "user_id": "priya"},
        {"content": "A memory that will be deleted about old phone numbers"},
    )
    # Give them versions: an update, a delete, a delete + restore.
    r = t.http.patch(f"/v1/memories/{mems[1]['id']}", json={"content": "Priya is vegan since 2022",
                                                           "reason": "diet changed"})
    assert r.status_code == 200
    assert t.http.delete(f"/v1/memories/{mems[4]['id']}").status_code == 200
    assert t.http.delete(f"/v1/memories/{mems[3]['id']}").status_code == 200
    assert t.http.post(f"/v1/memories/{mems[3]['id']}/restore").status_code == 200
    return mems


def test_export_has_a_header_and_one_line_per_memory_with_versions(tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "source", description="exported", owner_id="priya")
    mems = seed(tenant, cube)
    header, lines = export(tenant, cube)
    assert header["type"] == "header"
    assert header["format"] == "memcubed.cube-export"
    assert header["format_version"] == 1
    assert header["cube"] == {"name": "source", "description": "exported", "owner_id": "priya"}
    assert header["embedding_model"] == "all-MiniLM-L6-v2"
    assert datetime.fromisoformat(header["exported_at"]).tzinfo is not None
    assert len(lines) == 5
    assert all({"memory", "type", "versions"} <= set(line) and line["type"] == "memory" for line in lines)
    by_id = {line["memory"]["id"]: line for line in lines}
    assert set(by_id) == {m["id"] for m in mems}
    # Deleted memories are exported too, with status and versions.
    deleted = by_id[mems[4]["id"]]
    assert deleted["memory"]["status"] == "deleted"
    assert [(v["version"], v["reason"]) for v in deleted["versions"]] == [(1, "delete")]
    updated = by_id[mems[1]["id"]]
    assert updated["memory"]["content"] == "Priya is vegan since 2022"
    assert updated["memory"]["version"] == 2
    assert [(v["version"], v["reason"], v["snapshot"]["content"]) for v in updated["versions"]] == [
        (1, "diet changed", "Priya is vegetarian"),
    ]
    restored = by_id[mems[3]["id"]]
    assert [(v["version"], v["reason"]) for v in restored["versions"]] == [(1, "delete"), (2, "restore")]
    assert restored["memory"]["version"] == 3
    first = by_id[mems[0]["id"]]["memory"]
    for field in ("content", "memory_type", "user_id", "agent_id", "session_id", "tags", "metadata", "source",
                  "importance"):
        assert first[field] == mems[0][field], field
    # Lines are in creation order.
    created = [datetime.fromisoformat(line["memory"]["created_at"]) for line in lines]
    assert created == sorted(created)


def test_export_of_an_empty_cube_is_just_the_header(tenant: TenantCtx, cube: str) -> None:
    header, lines = export(tenant, cube)
    assert header["type"] == "header"
    assert lines == []


def _comparable(line: Json) -> Json:
    """An export line without what is local to a cube (ids)."""
    memory = {k: v for k, v in line["memory"].items() if k not in ("id", "cube_id")}
    return {"type": line["type"], "memory": memory, "versions": line["versions"]}


def test_round_trip_export_import_export_is_identical(tenant: TenantCtx) -> None:
    a = make_cube(tenant, "a")
    seed(tenant, a)
    header_a, lines_a = export(tenant, a)
    raw = tenant.http.get(f"/v1/cubes/{a}/export").content

    b = make_cube(tenant, "b")
    r = import_(tenant, b, raw)
    assert r.status_code == 201, r.text
    result = r.json()
    assert result["imported"] == 5
    assert set(result["id_map"]) == {line["memory"]["id"] for line in lines_a}
    assert not set(result["id_map"].values()) & set(result["id_map"])

    header_b, lines_b = export(tenant, b)
    assert {k: v for k, v in header_b.items() if k not in ("exported_at", "cube")} == \
        {k: v for k, v in header_a.items() if k not in ("exported_at", "cube")}
    by_id_b = {line["memory"]["id"]: line for line in lines_b}
    assert len(lines_b) == len(lines_a) == 5
    for line in lines_a:
        twin = by_id_b[result["id_map"][line["memory"]["id"]]]
        assert twin["memory"]["cube_id"] == b
        assert _comparable(twin) == _comparable(line)
    # Same order too (creation order is kept).
    assert [result["id_map"][line["memory"]["id"]] for line in lines_a] == [line["memory"]["id"] for line in lines_b]

    # Counts, lists and history follow the import.
    assert tenant.http.get(f"/v1/cubes/{b}").json()["memory_count"] == 4
    assert sorted(m["content"] for m in list_all(tenant, b, status="deleted")) == [
        "A memory that will be deleted about old phone numbers"]
    some = result["id_map"][lines_a[1]["memory"]["id"]]
    history = tenant.http.get(f"/v1/memories/{some}/history").json()
    assert history["current_version"] == 2
    assert [v["reason"] for v in history["versions"]] == ["diet changed"]


def test_search_on_the_imported_cube_matches_the_original(tenant: TenantCtx) -> None:
    a = make_cube(tenant, "a")
    seed(tenant, a)
    b = make_cube(tenant, "b")
    assert import_(tenant, b, tenant.http.get(f"/v1/cubes/{a}/export").content).status_code == 201
    for query in ("what does Priya eat?", "marathon running", "how do I reset the router?", "pets",
                  "old phone numbers"):
        hits_a = search(tenant, query, [a], top_k=10)
        hits_b = search(tenant, query, [b], top_k=10)
        assert [h["memory"]["content"] for h in hits_b] == [h["memory"]["content"] for h in hits_a], query
        assert [round(h["score"], 4) for h in hits_b] == [round(h["score"], 4) for h in hits_a]
        assert len(hits_a) == 4  # the deleted one stays out of search after import too
    assert all(h["memory"]["cube_id"] == b for h in search(tenant, "Priya", [b]))


def test_import_into_a_cube_that_has_memories_adds_to_them(tenant: TenantCtx) -> None:
    a = make_cube(tenant, "a")
    add_memories(tenant, a, "first", "second")
    b = make_cube(tenant, "b")
    add_memories(tenant, b, "already in b")
    raw = tenant.http.get(f"/v1/cubes/{a}/export").content
    assert import_(tenant, b, raw).json()["imported"] == 2
    assert import_(tenant, b, raw).json()["imported"] == 2  # a second import makes new copies
    assert sorted(m["content"] for m in list_all(tenant, b)) == ["already in b", "first", "first", "second",
                                                                   "second"]


def test_import_is_idempotent_with_a_key(tenant: TenantCtx) -> None:
    a = make_cube(tenant, "a")
    add_memories(tenant, a, "only once")
    raw = tenant.http.get(f"/v1/cubes/{a}/export").content
    b = make_cube(tenant, "b")
    headers = {"Idempotency-Key": "import-1"}
    first = import_(tenant, b, raw, headers)
    second = import_(tenant, b, raw, headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert [m["content"] for m in list_all(tenant, b)] == ["only once"]


def test_bad_imports_are_422_and_write_nothing(tenant: TenantCtx) -> None:
    a = make_cube(tenant, "a")
    add_memories(tenant, a, "good one")
    good = tenant.http.get(f"/v1/cubes/{a}/export").text
    header, line = good.splitlines()
    b = make_cube(tenant, "b")
    bad_memory = json.loads(line)
    bad_memory["memory"]["content"] = "  "
    nul_memory = json.loads(line)
    nul_memory["memory"]["content"] = "a\x00b"
    cases: list[tuple[bytes, Json]] = [
        (b"", {}),
        (b"not json\n", {"line": 1}),
        (b'{"type": "header", "format": "other"}\n', {"line": 1}),
        (b'{"type": "header", "format": "memcubed.cube-export", "format_version": 99}\n', {"line": 1}),
        ((header + "\n" + line + "\n{broken\n").encode(), {"line": 3}),
        ((header + "\n" + line + '\n{"type": "memory"}\n').encode(), {"line": 3}),
        ((header + "\n" + line + "\n" + json.dumps(bad_memory) + "\n").encode(),
         {"field": "line 3: memory.content"}),
        ((header + "\n" + json.dumps(nul_memory) + "\n").encode(), {"field": "line 2: memory.content"}),
    ]
    for body, details in cases:
        error = assert_error(import_(tenant, b, body), 422, "invalid_input")
        for k, v in details.items():
            assert error["details"][k] == v, (body, error)
    assert list_all(tenant, b) == []


def test_import_over_the_limit_of_a_memory_is_413(tenant: TenantCtx) -> None:
    a = make_cube(tenant, "a")
    add_memories(tenant, a, "small")
    header, line = tenant.http.get(f"/v1/cubes/{a}/export").text.splitlines()
    big = json.loads(line)
    big["memory"]["content"] = "x" * (32 * 1024 + 1)
    b = make_cube(tenant, "b")
    error = assert_error(import_(tenant, b, (header + "\n" + json.dumps(big) + "\n").encode()), 413,
                         "payload_too_large")
    assert error["details"]["field"] == "line 2: memory.content"
    assert list_all(tenant, b) == []


def test_import_refuses_values_the_api_would_refuse(tenant: TenantCtx) -> None:
    """An export edited by hand is checked like new input: a 422 naming the line, never a 500 or a bad row."""
    a = make_cube(tenant, "a")
    add_memories(tenant, a, "template")
    header, line = tenant.http.get(f"/v1/cubes/{a}/export").text.splitlines()
    b = make_cube(tenant, "b")
    edits: list[tuple[str, object]] = [
        ("memory_type", "dream"), ("memory_type", "x" * 50), ("status", "weird"), ("kind", "k" * 50),
        ("user_id", "u" * 300), ("tags", ["t" * 300]), ("user_id", "nul\x00"), ("tags", ["\x00"]),
        ("metadata", {"k": "\x00"}), ("occurred_at", "0001-01-01T00:00:00+05:00"), ("version", 2**40),
        ("access_count", -5), ("importance", 7.0), ("created_at", "yesterday"),
    ]
    for field, value in edits:
        edited = json.loads(line)
        edited["memory"][field] = value
        error = assert_error(import_(tenant, b, (header + "\n" + json.dumps(edited) + "\n").encode()), 422,
                             "invalid_input")
        assert error["details"].get("line") == 2 or error["details"].get("field", "").startswith("line 2:"), field
    version = {"version": 1, "reason": "r", "created_at": "2024-01-01T00:00:00Z", "snapshot": {}}
    for versions in ([version, version], [{**version, "version": 5}], [{**version, "reason": "r" * 201}],
                     [{**version, "snapshot": {"k": "\x00"}}]):
        edited = json.loads(line)
        edited["versions"] = versions
        assert_error(import_(tenant, b, (header + "\n" + json.dumps(edited) + "\n").encode()), 422,
                     "invalid_input")
    assert list_all(tenant, b) == []
