"""Changed facts at write time: the newer value of an attribute supersedes the older one in the same write,
versioned and reversible; search shows the current value first and names what it replaced."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.embedded import serve_in_thread
from tests.conftest import Databases, Json, TenantCtx, make_settings
from tests.evals.fake_llm import fake_llm_server


def post(http: httpx.Client, cube: str, *turns: str, speaker: str = "Maya", session: str = "s1") -> Json:
    r = http.post(f"/v1/cubes/{cube}/messages", json={"session_id": session, "messages": [
        {"role": "user", "speaker": speaker, "content": t} for t in turns]})
    assert r.status_code == 201, r.text
    return dict(r.json())


def contents(hits: list[Json]) -> list[str]:
    return [h["memory"]["content"] for h in hits]


def test_a_move_supersedes_the_old_city_at_once_and_restore_undoes_it(tenant: TenantCtx, cube: str) -> None:
    first = post(tenant.http, cube, "I live in Boston.", "I love the harbour walks.")
    boston = first["memories"][0]["id"]
    moved = post(tenant.http, cube, "Big news: we moved to Denver last month!")
    denver = moved["memories"][0]["id"]
    assert moved["admission"][0]["supersedes"] == [boston]
    old = tenant.http.get(f"/v1/memories/{boston}").json()
    assert (old["status"], old["superseded_by"], old["version"]) == ("archived", denver, 2)
    history = tenant.http.get(f"/v1/memories/{boston}/history").json()["versions"]
    assert [(v["version"], v["reason"]) for v in history] == [(1, f"superseded by {denver}")]

    for mode in ("fast", "fine"):
        r = tenant.http.post("/v1/search", json={"query": "Where does Maya live?", "cube_ids": [cube], "mode": mode})
        assert r.status_code == 200, r.text
        hits = r.json()["results"]
        assert "I live in Boston." not in contents(hits)
        top = next(h for h in hits if h["memory"]["id"] == denver)
        assert top["supersedes"] == [boston]
    with_history = tenant.http.post("/v1/search", json={"query": "Where does Maya live?", "cube_ids": [cube],
                                                        "include_superseded": True}).json()["results"]
    ids = [h["memory"]["id"] for h in with_history]
    assert ids.index(boston) == ids.index(denver) + 1  # the history follows the current value
    ctx = tenant.http.post("/v1/context", json={"query": "Where does Maya live?", "cube_ids": [cube],
                                                "use_cache": False}).json()
    assert "Denver" in ctx["context"] and "Boston" not in ctx["context"]

    restored = tenant.http.post(f"/v1/memories/{boston}/restore")
    assert restored.status_code == 200, restored.text
    assert (restored.json()["status"], restored.json()["superseded_by"]) == ("active", None)


def test_a_bare_correction_replaces_the_speakers_last_fact(tenant: TenantCtx, cube: str) -> None:
    out = post(tenant.http, cube, "My phone number is 555-0134.", "Actually, it's 555-0199.")
    assert out["admission"][1]["supersedes"] == [out["memories"][0]["id"]]
    assert [m["status"] for m in out["memories"]] == ["archived", "active"]
    old = tenant.http.get(f"/v1/memories/{out['memories'][0]['id']}").json()
    assert (old["status"], old["superseded_by"]) == ("archived", out["memories"][1]["id"])


def test_other_people_and_other_attributes_are_left_alone(tenant: TenantCtx, cube: str) -> None:
    post(tenant.http, cube, "I work at Google.", "My favorite color is green.")
    post(tenant.http, cube, "I work at Google.", speaker="Tom")  # Tom's job is his own
    later = post(tenant.http, cube, "My favorite food is ramen.", "I work at Stripe now.")
    assert later["admission"][0]["supersedes"] == []  # food is not colour
    replaced = later["admission"][1]["supersedes"]
    assert len(replaced) == 1
    assert tenant.http.get(f"/v1/memories/{replaced[0]}").json()["metadata"]["speaker"] == "Maya"
    same = post(tenant.http, cube, "My favorite color is green.")  # the same value again replaces nothing
    assert same["admission"][0]["supersedes"] == []


def test_the_llm_judges_what_no_rule_reads(databases: Databases, tmp_path: Path) -> None:
    """With an LLM configured (the fake one), a statement no fact rule reads is judged against the speaker's close
    older memories: the judge's pick is superseded like any other, the others stay."""
    with fake_llm_server() as fake:
        settings = make_settings(databases, tmp_path, llm_base_url=fake.url, supersede_llm_similarity=0.2)
        with serve_in_thread(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
            http.headers["Authorization"] = f"Bearer {settings.admin_key}"
            key = http.post("/v1/tenants", json={"name": "judge"}).json()["api_key"]
            http.headers["Authorization"] = f"Bearer {key}"
            cube = http.post("/v1/cubes", json={"name": "drinks"}).json()["id"]
            first = post(http, cube, "I drink coffee every morning.", "I drink water at lunch.")
            coffee, water = (m["id"] for m in first["memories"])
            asked = len(fake.requests)
            later = post(http, cube, "I switched from coffee to green tea.")
            judged = [r for r in fake.requests[asked:] if r["messages"][-1]["content"].startswith("Statements")]
            assert len(judged) == 1 and "NEW: I switched from coffee to green tea." in judged[0]["messages"][-1][
                "content"]
            assert later["admission"][0]["supersedes"] == [coffee]
            assert [http.get(f"/v1/memories/{i}").json()["status"] for i in (coffee, water)] == ["archived", "active"]
