"""Write admission: every item of a write is admitted, merged (with the id it merged into) or rejected."""

from __future__ import annotations

import numpy as np
import pytest

from app.services import admission
from app.services.admission import WriteTwins
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


def _reference_twins(vecs: np.ndarray, scopes: list[str], nums: list[frozenset[str]], skipped: set[int],
                     threshold: float) -> list[int | None]:
    """The admission's behaviour before chunking: one N x N matrix, the earliest admitted item that qualifies."""
    within = vecs @ vecs.T
    admitted: list[int] = []
    out: list[int | None] = []
    for i in range(len(vecs)):
        twin = None if i in skipped else next(
            (j for j in admitted if within[i, j] >= threshold and scopes[j] == scopes[i] and nums[j] == nums[i]),
            None)
        out.append(twin)
        if twin is None and i not in skipped:
            admitted.append(i)
    return out


@pytest.mark.parametrize(("chunk", "neighbours"), [(7, 1), (64, 2), (1024, 16)])
def test_chunked_twins_equal_the_full_matrix(monkeypatch: pytest.MonkeyPatch, chunk: int, neighbours: int) -> None:
    """Clusters of near duplicates (several scopes and numbers in each) across many chunks: the chunked FAISS
    search picks exactly the twins the full similarity matrix picked, also when one item has more qualifying
    earlier items than the first k neighbours."""
    monkeypatch.setattr(admission, "CHUNK", chunk)
    monkeypatch.setattr(admission, "NEIGHBOURS", neighbours)
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((25, 32)).astype(np.float32)
    vecs = centres[rng.integers(0, 25, 600)] + 0.12 * rng.standard_normal((600, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    scopes = [("u1" if x else "u2", None, "episodic") for x in rng.integers(0, 2, 600) < 1.7]
    nums = [frozenset({str(x)}) if x else frozenset() for x in rng.integers(0, 3, 600)]
    skipped = {i for i in range(600) if i % 11 == 5}  # rejected or exact duplicates: never asked, never admitted
    twins = WriteTwins(vecs, scopes, nums, 0.95)
    got: list[int | None] = []
    for i in range(600):
        found = None if i in skipped else twins.earliest(i)
        got.append(found[0] if found else None)
        if found is None and i not in skipped:
            twins.admit(i)
    want = _reference_twins(vecs, [str(s) for s in scopes], nums, skipped, 0.95)
    assert got == want
    assert sum(t is not None for t in want) > 200  # the fixture really has many near duplicates
    assert len({t for t in want if t is not None}) > 20
