"""Write admission: every item of a write is admitted, merged (with the id it merged into) or rejected."""

from __future__ import annotations

from tests.conftest import TenantCtx, list_all, search_ids
from tests.workers.helpers import get, write


def test_admission_statuses_are_exact_and_in_input_order(tenant: TenantCtx, cube: str) -> None:
    first = write(tenant, cube, "The garden needs watering twice a week in summer")
    garden = first["memories"][0]
    assert first["admission"] == [{"index": 0, "memory_id": garden["id"], "status": "admitted", "merged_into": None,
                                   "similarity": None, "reason": None, "supersedes": []}]
    assert garden["admission"]["status"] == "admitted" and garden["status"] == "active"

    body = write(tenant, cube,
                 "ok",                                                    # 0 filler only
                 "The garden needs watering twice a week in summer",      # 1 exact duplicate of an active memory
                 "Bob's birthday is on the 4th of March",                 # 2 new
                 "lol",                                                   # 3 filler only
                 "The garden needs watering twice a week in summer!",     # 4 near duplicate (cosine ≥ 0.95)
                 "Bob's birthday is on the 4th of March",                 # 5 duplicate of item 2 of this write
                 "!!! ...",                                               # 6 no letters or digits
                 {"content": "The garden needs watering twice a week in summer", "user_id": "u2"})  # 7 other user
    items = body["admission"]
    assert [it["index"] for it in items] == list(range(8))
    assert [it["status"] for it in items] == ["rejected", "merged", "admitted", "rejected", "merged", "merged",
                                              "rejected", "admitted"]
    stored = {m["id"]: m for m in body["memories"]}
    assert len(body["memories"]) == 5  # rejected items store nothing; every other item is a row, in input order
    assert [m["id"] for m in body["memories"]] == [it["memory_id"] for it in items if it["memory_id"]]
    for i in (0, 3, 6):
        assert items[i]["memory_id"] is None and "meaningful" in items[i]["reason"]
    assert items[1]["merged_into"] == garden["id"] and items[1]["similarity"] == 1.0
    assert items[4]["merged_into"] == garden["id"] and 0.95 <= items[4]["similarity"] < 1.0
    assert items[5]["merged_into"] == items[2]["memory_id"]
    for i in (1, 4, 5):
        m = stored[items[i]["memory_id"]]
        assert m["status"] == "archived" and m["merged_into"] == items[i]["merged_into"]
        assert m["admission"]["status"] == "merged"
    # The active set holds each fact once; search never shows the merged copies.
    active = list_all(tenant, cube, status="active")
    assert sorted(m["content"] for m in active) == sorted([
        "The garden needs watering twice a week in summer", "Bob's birthday is on the 4th of March",
        "The garden needs watering twice a week in summer"])
    hits = search_ids(tenant, "when is Bob's birthday", [cube])
    assert items[2]["memory_id"] in hits and items[5]["memory_id"] not in hits
    # A merged item keeps its own content and can be restored.
    r = tenant.http.post(f"/v1/memories/{items[4]['memory_id']}/restore")
    assert r.status_code == 200, r.text
    restored = get(tenant, items[4]["memory_id"])
    assert restored["status"] == "active" and restored["merged_into"] is None
    assert restored["content"] == "The garden needs watering twice a week in summer!"


def test_messages_get_admission_too(tenant: TenantCtx, cube: str) -> None:
    r = tenant.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": "s1", "messages": [
        {"role": "user", "content": "haha ok"}, {"role": "user", "content": "I adopted a cat called Miso"},
        {"role": "assistant", "content": "I adopted a cat called Miso"}]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert [it["status"] for it in body["admission"]] == ["rejected", "admitted", "merged"]
    assert len(body["memories"]) == 2
