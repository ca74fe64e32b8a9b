"""What an agent reads first: the person asked about before others with similar facts, the current value before
memories repeating the one it replaced, and a full context most relevant first (each line dated)."""

from __future__ import annotations

from tests.conftest import Json, TenantCtx


def post(t: TenantCtx, cube: str, session: str, turns: list[tuple[str, str]], day: str) -> Json:
    r = t.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": session, "messages": [
        {"role": "user" if who != "Assistant" else "assistant", "speaker": who, "content": text,
         "timestamp": f"{day}T10:0{i}:00Z"} for i, (who, text) in enumerate(turns)]})
    assert r.status_code == 201, r.text
    return dict(r.json())


def context(t: TenantCtx, cube: str, query: str) -> Json:
    r = t.http.post("/v1/context", json={"query": query, "cube_ids": [cube], "budget": "auto", "use_cache": False})
    assert r.status_code == 200, r.text
    return dict(r.json())


def search(t: TenantCtx, cube: str, query: str, mode: str) -> list[str]:
    r = t.http.post("/v1/search", json={"query": query, "cube_ids": [cube], "mode": mode, "top_k": 10})
    assert r.status_code == 200, r.text
    return [h["memory"]["content"] for h in r.json()["results"]]


def test_the_person_asked_about_comes_first(tenant: TenantCtx, cube: str) -> None:
    post(tenant, cube, "s1", [("User", "I'm planning dinner for my two flatmates"),
                              ("Assistant", "Any preferences?"),
                              ("User", "Tom loves sushi, he'd eat it every day"),
                              ("Assistant", "And the other one?"),
                              ("User", "Ana loves ramen, the spicier the better")], "2024-03-01")
    for name, own, other in (("Ana", "Ana loves ramen", "Tom loves sushi"),
                             ("Tom", "Tom loves sushi", "Ana loves ramen")):
        query = f"What food does {name} love?"
        ctx = context(tenant, cube, query)
        assert ctx["full_context"] is True
        lines = ctx["context"].splitlines()
        assert len(lines) == 5 and all(line.startswith("- [2024-03-01] ") for line in lines)
        assert ctx["context"].index(own) < ctx["context"].index(other)
        for mode in ("fast", "fine"):
            hits = search(tenant, cube, query, mode)
            assert len(hits) == 5
            assert hits.index(next(h for h in hits if h.startswith(own))) < hits.index(
                next(h for h in hits if h.startswith(other))), (mode, hits)


def test_the_current_value_comes_before_an_echo_of_the_old_one(tenant: TenantCtx, cube: str) -> None:
    post(tenant, cube, "s1", [("Maya", "I live in Boston and the winters are killing me"),
                              ("Assistant", "Boston winters are brutal. Any plans to escape?")], "2024-09-01")
    moved = post(tenant, cube, "s2", [("Maya", "big news, we moved to Denver last month!"),
                                      ("Assistant", "Congratulations! How are you finding it?")], "2025-03-20")
    assert len(moved["admission"][0]["supersedes"]) == 1
    query = "Where does Maya live?"
    for mode in ("fast", "fine"):
        hits = search(tenant, cube, query, mode)
        assert "I live in Boston and the winters are killing me" not in hits  # archived: superseded
        assert hits.index("big news, we moved to Denver last month!") < hits.index(
            "Boston winters are brutal. Any plans to escape?"), (mode, hits)
    text = context(tenant, cube, query)["context"]
    assert text.index("Denver") < text.index("Boston")
