"""Forget requests in messages: the detector on a labelled corpus, what a request archives (exactly the memories
about its subject), reverting it, the purge policy, the LLM classifier (the fake OpenAI-compatible server), and
the audit trail."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.embedded import serve_in_thread
from app.forget_requests.detector import detect
from tests.conftest import (
    Databases,
    Json,
    LiveServer,
    TenantCtx,
    add_memories,
    assert_error,
    make_settings,
    search_ids,
    sql,
    wait_enriched,
)
from tests.evals.fake_llm import FakeLLM, fake_llm_server

CORPUS = Path(__file__).parent / "fixtures" / "forget_requests.jsonl"

ADDRESS = ["My home address is 42 Elm Street, Springfield", "Please send the parcel to my address: 42 Elm Street"]
OTHERS = ["My favourite colour is green", "I have a dog named Rex", "My sister's birthday is on May 3rd",
          "I work as a nurse at the city hospital", "My phone number is 555-0134", "I moved to Springfield last year"]


def corpus() -> list[Json]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def test_detector_precision_and_recall_on_the_corpus() -> None:
    rows = corpus()
    assert (len(rows), sum(r["forget"] for r in rows)) == (143, 75)
    found = [(r, detect(r["text"])) for r in rows]
    tp = [(r, d) for r, d in found if r["forget"] and d is not None]
    fp = [r["text"] for r, d in found if not r["forget"] and d is not None]
    fn = [r["text"] for r, d in found if r["forget"] and d is None]
    assert (len(tp), len(fp), len(fn)) == (73, 0, 2)  # precision 1.0, recall 73/75 = 0.973
    assert [r["text"] for r, d in tp if d is not None and d.subject != r["subject"]] == []
    assert fn == ["My salary is private, so let it go from your memory.",
                  "Can my address be removed from what you know?"]


def post_messages(http: httpx.Client, cube: str, *messages: tuple[str, str]) -> Json:
    r = http.post(f"/v1/cubes/{cube}/messages",
                  json={"session_id": "chat-1", "messages": [{"role": role, "content": c} for role, c in messages]})
    assert r.status_code == 201, r.text
    return dict(r.json())


def memory(http: httpx.Client, memory_id: str) -> Json:
    r = http.get(f"/v1/memories/{memory_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def audit(live_server: LiveServer, action: str, object_id: str | None = None) -> list[tuple[Any, ...]]:
    query = "SELECT object_id::text, key_id IS NOT NULL, details FROM audit_log WHERE action = %s"
    params: tuple[Any, ...] = (action,)
    if object_id is not None:
        query, params = query + " AND object_id = %s", (action, object_id)
    return sql(live_server.settings.database_url or "", query + " ORDER BY at, id", params)


def test_forget_my_address_archives_exactly_the_address_memories_and_reverts(
        live_server: LiveServer, tenant: TenantCtx, cube: str) -> None:
    http = tenant.http
    stored = add_memories(tenant, cube, *ADDRESS, *OTHERS)
    address_ids, other_ids = sorted(m["id"] for m in stored[:2]), [m["id"] for m in stored[2:]]
    out = post_messages(http, cube, ("user", "Thanks for the help! Please forget my address."),
                        ("assistant", "Of course, I will forget your address."))
    assert sorted(out["forgotten"]) == address_ids
    request_id = out["forget_request_id"]
    # The request message is kept with the request redacted; the assistant's turn is not a request.
    assert [m["content"] for m in out["memories"]] == ["Thanks for the help! [forget request: address]",
                                                        "Of course, I will forget your address."]
    assert out["memories"][0]["metadata"]["forget_request_id"] == request_id
    for memory_id in address_ids:
        m = memory(http, memory_id)
        assert (m["status"], m["version"]) == ("archived", 2)
        history = http.get(f"/v1/memories/{memory_id}/history").json()["versions"]
        assert [(v["version"], v["reason"]) for v in history] == [(1, "forget request")]
    assert [memory(http, i)["status"] for i in other_ids] == ["active"] * len(OTHERS)
    assert not set(search_ids(tenant, "what is my home address", [cube])) & set(address_ids)

    listed = http.get(f"/v1/cubes/{cube}/forget-requests").json()["forget_requests"]
    assert [(r["id"], r["subject"], r["detector"], r["policy"], r["status"], sorted(r["memory_ids"]))
            for r in listed] == [(request_id, "address", "rules", "archive", "applied", address_ids)]
    stored_request = sql(live_server.settings.database_url or "",
                         "SELECT subject || details::text FROM forget_requests WHERE id = %s", (request_id,))
    assert "Elm" not in stored_request[0][0]  # the subject, never the forgotten content
    assert [(oid, by_key) for oid, by_key, _ in audit(live_server, "forget_request.apply", request_id)] == [
        (request_id, True)]
    forgets = [row for row in audit(live_server, "memory.forget") if row[0] in address_ids]
    assert sorted(oid for oid, _, _ in forgets) == address_ids
    assert {(by_key, d["reason"], d["forget_request_id"]) for _, by_key, d in forgets} == {
        (True, "forget request", request_id)}

    reverted = http.post(f"/v1/forget-requests/{request_id}/revert")
    assert reverted.status_code == 200, reverted.text
    assert (reverted.json()["status"], reverted.json()["reverted_at"] is not None) == ("reverted", True)
    for memory_id, content in zip(address_ids, [m["content"] for m in sorted(stored[:2], key=lambda m: m["id"])]):
        m = memory(http, memory_id)
        assert (m["status"], m["version"], m["content"]) == ("active", 3, content)
    assert set(address_ids) <= set(search_ids(tenant, "what is my home address", [cube]))
    assert len(audit(live_server, "forget_request.revert", request_id)) == 1
    assert sorted(r[0] for r in audit(live_server, "memory.restore") if r[0] in address_ids) == address_ids
    assert_error(http.post(f"/v1/forget-requests/{request_id}/revert"), 409, "conflict")

    # Asked again: the same memories and the assistant's turn that mentions the address since, never the marker
    # the first request left.
    again = post_messages(http, cube, ("user", "Stop remembering my address."))
    assert sorted(again["forgotten"]) == sorted([*address_ids, out["memories"][1]["id"]])
    assert memory(http, out["memories"][0]["id"])["status"] == "active"


def test_a_shared_name_alone_does_not_make_a_memory_about_the_subject(tenant: TenantCtx, cube: str) -> None:
    """MiniLM puts "where alice lives" at 0.53 to the peanut allergy, 0.68 to the move, 0.79 to the street."""
    peanuts, berlin, street = add_memories(tenant, cube, "Alice is allergic to peanuts",
                                           "Alice moved to Berlin in 2021", "Alice lives at 12 Rose Street")
    out = post_messages(tenant.http, cube, ("user", "Please forget where Alice lives."))
    assert sorted(out["forgotten"]) == sorted([berlin["id"], street["id"]])
    assert memory(tenant.http, peanuts["id"])["status"] == "active"


def test_messages_that_are_not_requests_are_stored_as_they_are(tenant: TenantCtx, cube: str) -> None:
    add_memories(tenant, cube, *ADDRESS)
    out = post_messages(tenant.http, cube, ("user", "I forgot my keys at my address again."),
                        ("user", "Don't forget to call mom."))
    assert (out["forgotten"], out["forget_request_id"]) == ([], None)
    assert [m["content"] for m in out["memories"]] == ["I forgot my keys at my address again.",
                                                        "Don't forget to call mom."]
    assert tenant.http.get(f"/v1/cubes/{cube}/forget-requests").json() == {"forget_requests": []}


def test_purge_policy_destroys_and_cannot_be_reverted(live_server: LiveServer, tenant: TenantCtx, cube: str) -> None:
    http = tenant.http
    stored = add_memories(tenant, cube, *OTHERS)
    phone = stored[4]["id"]
    assert http.get(f"/v1/cubes/{cube}").json()["forget_policy"] == "archive"
    assert_error(http.patch(f"/v1/cubes/{cube}", json={"forget_policy": "shred"}), 422, "validation_error")
    assert http.patch(f"/v1/cubes/{cube}", json={"forget_policy": "purge"}).json()["forget_policy"] == "purge"
    assert len(audit(live_server, "cube.update", cube)) == 1
    out = post_messages(http, cube, ("user", "Please erase my phone number."))
    assert out["forgotten"] == [phone]
    assert_error(http.get(f"/v1/memories/{phone}"), 404, "not_found")
    db = live_server.settings.database_url or ""
    assert sql(db, "SELECT count(*) FROM memory_versions WHERE memory_id = %s", (phone,)) == [(0,)]
    purges = audit(live_server, "memory.purge", phone)
    assert [(d["reason"], d["forget_request_id"], d["content_hash"] is not None) for _, _, d in purges] == [
        ("forget request", out["forget_request_id"], True)]
    listed = http.get(f"/v1/cubes/{cube}/forget-requests").json()["forget_requests"]
    assert [(r["status"], r["policy"], r["memory_ids"]) for r in listed] == [("purged", "purge", [phone])]
    error = assert_error(http.post(f"/v1/forget-requests/{out['forget_request_id']}/revert"), 409, "conflict")
    assert error["details"] == {"status": "purged"}
    assert phone not in search_ids(tenant, "my phone number", [cube])


def test_another_tenant_cannot_see_or_revert_a_request(tenant: TenantCtx, other_tenant: TenantCtx,
                                                        cube: str) -> None:
    add_memories(tenant, cube, *ADDRESS)
    request_id = post_messages(tenant.http, cube, ("user", "Forget my address."))["forget_request_id"]
    assert_error(other_tenant.http.get(f"/v1/cubes/{cube}/forget-requests"), 404, "not_found")
    assert_error(other_tenant.http.post(f"/v1/forget-requests/{request_id}/revert"), 404, "not_found")
    assert_error(tenant.http.post(f"/v1/forget-requests/{uuid.uuid4()}/revert"), 404, "not_found")


@pytest.fixture(scope="module")
def llm_server(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, FakeLLM]]:
    with fake_llm_server() as fake:
        settings = make_settings(databases, Path(tmp_path_factory.mktemp("llm")), llm_base_url=fake.url,
                                 supersede_llm=False)  # only the classifier calls the LLM here: counted exactly
        with serve_in_thread(settings) as url:
            yield url, settings, fake


def test_the_llm_classifier_decides_when_configured(llm_server: tuple[str, Any, FakeLLM]) -> None:
    url, settings, fake = llm_server
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {settings.admin_key}"}, timeout=60) as a:
        key = a.post("/v1/tenants", json={"name": "llm"}).json()["api_key"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        cube = http.post("/v1/cubes", json={"name": "c"}).json()["id"]
        r = http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": c} for c in OTHERS]})
        phone = r.json()["memories"][4]["id"]
        fake.requests.clear()
        # The rules do not know this phrasing; the (fake) LLM does.
        out = post_messages(http, cube, ("user", "Please make my phone number vanish from your records."))
        assert (out["forgotten"], out["memories"][0]["content"]) == ([phone], "[forget request: phone]")
        listed = http.get(f"/v1/cubes/{cube}/forget-requests").json()["forget_requests"]
        assert [(r["detector"], r["subject"]) for r in listed] == [("llm", "phone number")]
        assert len(fake.requests) == 1
        assert fake.requests[0]["messages"][1]["content"] == (
            "Message to classify: Please make my phone number vanish from your records.")
        # No memory verb, no call; and the LLM's "no" wins over what the rules would say.
        post_messages(http, cube, ("user", "What a lovely day."), ("assistant", "Forget my address."))
        assert len(fake.requests) == 1
        declined = post_messages(http, cube, ("user", "Forget my favourite colour."))
        assert (declined["forgotten"], declined["memories"][0]["content"]) == ([], "Forget my favourite colour.")
        assert len(fake.requests) == 2
        # When the LLM fails, the rules decide (and the message stored verbatim above is about the colour too).
        fake.fail_first.extend([500, 500])  # the call and its retry
        out = post_messages(http, cube, ("user", "Forget my favourite colour."))
        assert sorted(out["forgotten"]) == sorted([r.json()["memories"][0]["id"], declined["memories"][0]["id"]])
        listed = http.get(f"/v1/cubes/{cube}/forget-requests").json()["forget_requests"]
        assert listed[0]["detector"] == "rules"


def test_a_retried_request_forgets_once(tenant: TenantCtx, cube: str) -> None:
    add_memories(tenant, cube, *ADDRESS)
    body = {"session_id": "s", "messages": [{"role": "user", "content": "Forget my address."}]}
    first = tenant.http.post(f"/v1/cubes/{cube}/messages", json=body, headers={"Idempotency-Key": "k1"})
    again = tenant.http.post(f"/v1/cubes/{cube}/messages", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and len(first.json()["forgotten"]) == 2
    listed = tenant.http.get(f"/v1/cubes/{cube}/forget-requests").json()["forget_requests"]
    assert [r["id"] for r in listed] == [first.json()["forget_request_id"]]


def texts(t: TenantCtx, cube: str, query: str) -> str:
    """Everything search (fine) and /v1/context give back for a query, and the cube's active memories."""
    hits = t.http.post("/v1/search", json={"query": query, "cube_ids": [cube], "mode": "fine", "top_k": 20})
    ctx = t.http.post("/v1/context", json={"query": query, "cube_ids": [cube], "budget": "auto", "use_cache": False})
    listed = t.http.get(f"/v1/cubes/{cube}/memories", params={"status": "active", "limit": 500})
    assert (hits.status_code, ctx.status_code, listed.status_code) == (200, 200, 200), (hits.text, ctx.text)
    return "\n".join([*(h["memory"]["content"] for h in hits.json()["results"]), ctx.json()["context"],
                      *(m["content"] for m in listed.json()["memories"])])


def test_a_request_forgets_the_earlier_messages_of_its_own_call(tenant: TenantCtx, cube: str) -> None:
    out = post_messages(tenant.http, cube, ("user", "My passport number is K4471932."), ("assistant", "Noted."),
                        ("user", "Please forget my passport number, I shouldn't have shared it."),
                        ("user", "Anyway, my passport expires next spring."))
    first, _, request, after = out["memories"]
    assert out["forgotten"] == [first["id"]]
    assert [m["status"] for m in out["memories"]] == ["archived", "active", "active", "active"]
    assert request["content"] == "[forget request: identity]"
    assert memory(tenant.http, after["id"])["status"] == "active"  # said after the request: kept
    wait_enriched(tenant, cube)
    assert "K4471932" not in texts(tenant, cube, "what is my passport number")
    assert "K4471932" not in texts(tenant, cube, "K4471932")


def test_a_sensitive_kind_finds_data_that_shares_no_word_with_the_request(tenant: TenantCtx, cube: str) -> None:
    stored = add_memories(tenant, cube, "I live at 42 Elm Street, Springfield.", "Call me on +1 (415) 555-0134.",
                          "Ping me at dana.k@example.org anytime.", "I moved to Springfield last year.",
                          "The elm trees on our street are lovely.")
    ids = [m["id"] for m in stored]
    assert post_messages(tenant.http, cube, ("user", "Forget my address."))["forgotten"] == [ids[0]]
    assert post_messages(tenant.http, cube, ("user", "Please delete my phone number from your memory."))[
        "forgotten"] == [ids[1]]
    assert post_messages(tenant.http, cube, ("user", "Don't keep my email."))["forgotten"] == [ids[2]]
    assert [memory(tenant.http, i)["status"] for i in ids[3:]] == ["active", "active"]


def test_my_birthday_leaves_my_sisters_birthday(tenant: TenantCtx, cube: str) -> None:
    stored = add_memories(tenant, cube, "My sister's birthday is on March 3rd.", "My birthday is June 9th.",
                          "That's my birthday cake recipe, chocolate with cherries.")
    out = post_messages(tenant.http, cube, ("user", "Please forget my birthday."))
    assert sorted(out["forgotten"]) == sorted([stored[1]["id"], stored[2]["id"]])
    assert memory(tenant.http, stored[0]["id"])["status"] == "active"


def test_entities_of_forgotten_memories_are_not_listed(tenant: TenantCtx, cube: str) -> None:
    add_memories(tenant, cube, "My ex is called Marcus Webb.", "I went hiking with Priya Raman.")
    wait_enriched(tenant, cube)

    def names() -> list[str]:
        r = tenant.http.get(f"/v1/cubes/{cube}/entities", params={"limit": 100})
        assert r.status_code == 200, r.text
        return sorted(e["name"] for e in r.json()["entities"])

    assert "Marcus Webb" in names()
    assert len(post_messages(tenant.http, cube, ("user", "Forget everything about Marcus Webb."))["forgotten"]) == 1
    assert "Marcus Webb" not in names() and "Priya Raman" in names()


def test_kinds_find_amounts_spaced_ids_recovery_phrases_birth_dates_and_medication(tenant: TenantCtx,
                                                                                    cube: str) -> None:
    """Each request names its data only by kind; the memory beside it of another kind stays."""
    stored = add_memories(tenant, cube, "They offered me 58,500 a year at the new firm.",
                          "The tax form asked for my NI number: AB 12 34 56 D.",
                          "The wallet recovery phrase begins with harbor maple.",
                          "I was born on 02/11/1988 in Cork.",
                          "I take metformin every morning with breakfast.",
                          "We adopted a tabby cat called Biscuit.")
    ids = [m["id"] for m in stored]
    asks = ["Could you forget what I said about my salary?", "Remove my national insurance number from your notes.",
            "You shouldn't keep that recovery phrase, forget it.", "pls forgt my date of birth",
            "Can you not hold on to what I told you about my meds?"]
    assert [post_messages(tenant.http, cube, ("user", ask))["forgotten"] for ask in asks] == [[i] for i in ids[:5]]
    assert memory(tenant.http, ids[5])["status"] == "active"


def test_my_address_leaves_data_of_the_same_kind_that_is_someone_elses(tenant: TenantCtx, cube: str) -> None:
    stored = add_memories(tenant, cube, "Our flat is at 7 Ropewalk Lane.",
                          "My grandparents live at 30 Heather Close, their card goes there.",
                          "Her office is at 2 Market Square.", "My brother and I live at 7 Ropewalk Lane too.")
    out = post_messages(tenant.http, cube, ("user", "Forget my address."))
    assert sorted(out["forgotten"]) == sorted([stored[0]["id"], stored[3]["id"]])
    assert [memory(tenant.http, m["id"])["status"] for m in stored[1:3]] == ["active", "active"]


def test_a_memory_that_says_more_loses_only_the_data_and_gets_it_back_on_revert(tenant: TenantCtx,
                                                                                  cube: str) -> None:
    http = tenant.http
    mixed = "I'm Oskar, I coach the under-12s in Bergen. Reach me at oskar.lind@fjordmail.no any evening."
    stored = add_memories(tenant, cube, mixed, "Email is oskar.l@work.no")
    out = post_messages(http, cube, ("user", "Please forget my email address."))
    assert sorted(out["forgotten"]) == sorted(m["id"] for m in stored)
    kept, gone = memory(http, stored[0]["id"]), memory(http, stored[1]["id"])
    assert (kept["status"], kept["version"], kept["content"]) == (
        "active", 2, "I'm Oskar, I coach the under-12s in Bergen. Reach me at [forgotten] any evening.")
    assert (gone["status"], gone["version"]) == ("archived", 2)
    request = http.get(f"/v1/cubes/{cube}/forget-requests").json()["forget_requests"][0]
    assert request["details"]["redacted"] == {stored[0]["id"]: 2}
    wait_enriched(tenant, cube)
    for mode in ("fast", "fine"):
        r = http.post("/v1/search", json={"query": "who coaches the under-12s in Bergen", "cube_ids": [cube],
                                          "top_k": 5, "mode": mode})
        assert r.status_code == 200, r.text
        hits = [h["memory"] for h in r.json()["results"]]
        assert hits[0]["id"] == stored[0]["id"]
        assert [h["content"] for h in hits if "@" in h["content"]] == []
    assert http.post(f"/v1/forget-requests/{request['id']}/revert").status_code == 200
    back = memory(http, stored[0]["id"])
    assert (back["status"], back["version"], back["content"]) == ("active", 3, mixed)
    assert memory(http, stored[1]["id"])["status"] == "active"


def test_what_the_request_says_to_keep_stays(tenant: TenantCtx, cube: str) -> None:
    private, work = add_memories(tenant, cube, "My private email is tariq.h@inbox.com",
                                 "My work email is t.hassan@acme.io")
    out = post_messages(tenant.http, cube, ("user", "Forget my private email, leave the work one alone."))
    assert out["forgotten"] == [private["id"]]
    assert memory(tenant.http, work["id"])["status"] == "active"


def test_forget_that_number_takes_the_turn_it_points_back_to(tenant: TenantCtx, cube: str) -> None:
    out = post_messages(tenant.http, cube, ("user", "the side gate keypad takes 7731"),
                        ("assistant", "Got it."), ("user", "I'll water the tomatoes later"),
                        ("user", "hmm, actually forget that number"))
    code, _, tomatoes, _ = (m["id"] for m in out["memories"])
    assert out["forgotten"] == [code]
    assert memory(tenant.http, tomatoes)["status"] == "active"


def test_a_name_is_cut_out_of_a_memory_that_says_more(tenant: TenantCtx, cube: str) -> None:
    hike, call = add_memories(tenant, cube, "Went hiking in the Alps with Marguerite last summer, superb views",
                              "Marguerite rang twice")
    out = post_messages(tenant.http, cube, ("user", "please forget about Marguerite"))
    assert sorted(out["forgotten"]) == sorted([hike["id"], call["id"]])
    kept = memory(tenant.http, hike["id"])
    assert (kept["status"], kept["content"]) == (
        "active", "Went hiking in the Alps with [forgotten] last summer, superb views")
    assert memory(tenant.http, call["id"])["status"] == "archived"


def test_a_diagnosis_takes_the_memories_that_repeat_its_name(tenant: TenantCtx, cube: str) -> None:
    told, again, other = add_memories(tenant, cube, "The doctor says it's Hashimoto's disease",
                                      "Hashimoto's flaring up again, so tired today",
                                      "Booked the ferry to Skye for June")
    out = post_messages(tenant.http, cube, ("user", "Please forget my diagnosis."))
    assert sorted(out["forgotten"]) == sorted([told["id"], again["id"]])
    assert memory(tenant.http, other["id"])["status"] == "active"


def test_data_named_by_the_request_is_cut_out_however_the_memory_was_found(tenant: TenantCtx, cube: str) -> None:
    (mixed,) = add_memories(tenant, cube, "My birthday is 3 March and I grew up near the Tromsø fishing harbour")
    out = post_messages(tenant.http, cube, ("user", "forget my birthday"))
    assert out["forgotten"] == [mixed["id"]]
    kept = memory(tenant.http, mixed["id"])
    assert (kept["status"], kept["content"]) == (
        "active", "My birthday is [forgotten] and I grew up near the Tromsø fishing harbour")
