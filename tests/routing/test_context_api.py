"""/v1/context, /v1/answer and /v1/search with budgets over a live server: tiers, reasons and cost in
``routing``, the full-context shortcut, abstention, the 422s, and a corrupt router file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.budget.features import featurize
from app.budget.policy import RulePolicy
from app.budget.train import train
from app.embedded import serve_in_thread
from app.services.routing.service import NO_POLICY
from tests.activation.conftest import MODELS_DIR
from tests.conftest import Databases, LiveServer, TenantCtx, assert_error, make_cube, make_settings, new_tenant
from tests.evals.fake_llm import fake_llm_server
from tests.routing.corpus import conversation, ingest
from tests.routing.synthetic import write_log

Json = dict[str, Any]
WHEN = "When did Caroline go to the LGBTQ support group?"
OFF_TOPIC = "What is the capital of Mongolia?"


@pytest.fixture(scope="module")
def convo(live_server: LiveServer, admin: httpx.Client) -> Iterator[tuple[TenantCtx, str, list[Json]]]:
    """One tenant and a cube of 86 turns in three sessions (about 2,500 tokens: over the default budget)."""
    t = new_tenant(live_server, admin)
    cube = make_cube(t, "convo")
    stored = ingest(t, cube, conversation())
    yield t, cube, stored
    t.http.close()


def post(t: TenantCtx, path: str, body: Json, status: int = 200) -> Json:
    r = t.http.post(path, json=body)
    assert r.status_code == status, r.text
    return dict(r.json())


def context(t: TenantCtx, cube: str, query: str, budget: Any, **extra: Any) -> Json:
    return post(t, "/v1/context", {"query": query, "cube_ids": [cube], "budget": budget, "use_cache": False,
                                   **extra})


def support_group_id(stored: list[Json]) -> str:
    return next(m["id"] for m in stored if "support group" in m["content"])


@pytest.mark.parametrize("tier", ["low", "mid", "high"])
def test_each_tier_runs_and_reports_itself(convo: tuple[TenantCtx, str, list[Json]], tier: str) -> None:
    t, cube, stored = convo
    body = context(t, cube, WHEN, tier)
    routing = body["routing"]
    assert routing["tiers"] == {"retrieval": tier, "context": tier}
    assert routing["reasons"] == {"retrieval": "forced", "context": "forced"}
    assert routing["policy"] is None and routing["warnings"] == []
    assert routing["cache"] == {"hit": False, "kind": None}
    assert routing["cost"]["llm_calls"] == 0 and routing["cost"]["tokens"] == body["tokens"]
    assert set(routing["cost"]["ms"]) == {"retrieval", "context", "total"}
    assert routing["cost"]["ms"]["total"] >= routing["cost"]["ms"]["retrieval"] + routing["cost"]["ms"]["context"]
    assert (body["abstained"], body["full_context"]) == (False, False)
    assert 0 < body["tokens"] <= 1024
    roles = [item["role"] for item in body["items"]]
    snippets = [item for item in body["items"] if item["role"] == "snippet"]
    assert roles[: len(snippets)] == ["snippet"] * len(snippets)  # snippets first, in rank order
    assert support_group_id(stored) in [s["memory_id"] for s in snippets[:3]]
    # Rank order is retrieval's reordered for the agent (app.memory.ranking): snippets about someone other than
    # the query's names move down, so the first is Caroline's (or about her).
    assert snippets[0]["speaker"] == "Caroline" or "Caroline" in snippets[0]["content"]
    lines = body["context"].splitlines()
    assert len(lines) == len(body["items"])
    said = "Caroline: I went to the LGBTQ support group yesterday and it was so powerful."
    if tier == "low":
        assert set(roles) == {"snippet"} and f"- {said}" in lines
        assert all(not line.startswith("- [") for line in lines)
    else:
        assert f"- [2023-05-08] {said}" in lines
        assert "neighbour" in roles
    if tier == "high":
        assert "summary" in roles and "graph" in roles
    else:
        assert "summary" not in roles and "graph" not in roles


def test_auto_routes_by_the_documented_rules(convo: tuple[TenantCtx, str, list[Json]]) -> None:
    t, cube, stored = convo
    for query in (WHEN, "pottery class", "What did Melanie paint?"):
        # Exactly what the rules decide for these features (86 memories, 3 sessions, nothing cached yet).
        features = featurize(query, len(stored), 3, False)
        expected = RulePolicy().choose(features,
                                       {"retrieval": ["low", "mid", "high"], "context": ["low", "mid", "high"]})
        routing = context(t, cube, query, "auto")["routing"]
        assert (routing["tiers"], routing["reasons"], routing["policy"]) == (expected.tiers, expected.reasons, None)
        assert routing["features"] == features.as_json()  # what the router saw, reported
        assert routing["warnings"] == [NO_POLICY]
        assert all(reason.startswith("rule: ") for reason in routing["reasons"].values())
    assert context(t, cube, WHEN, "auto")["routing"]["tiers"]["retrieval"] == "high"  # a time question
    assert context(t, cube, "pottery class", "auto")["routing"]["tiers"]["retrieval"] == "low"  # a keyword lookup
    # A limits budget routes too; a forced tier stays forced.
    mixed = context(t, cube, WHEN, {"max_tokens": 300, "tiers": {"context": "high"}})
    assert mixed["routing"]["tiers"] == {"retrieval": "high", "context": "high"}
    assert mixed["routing"]["reasons"]["context"] == "forced" and mixed["tokens"] <= 300


def test_search_with_a_budget_reports_routing(convo: tuple[TenantCtx, str, list[Json]]) -> None:
    t, cube, stored = convo
    body = post(t, "/v1/search", {"query": "LGBTQ support group", "cube_ids": [cube], "top_k": 3, "budget": "low",
                                  "use_cache": False})
    assert body["routing"]["tiers"] == {"retrieval": "low"}
    assert body["routing"]["cost"]["tokens"] == 0 and set(body["routing"]["cost"]["ms"]) == {"retrieval", "total"}
    # Windowed BM25 scores a turn with its neighbours, so the fact turn is in the top 3, not always first.
    assert support_group_id(stored) in [hit["memory"]["id"] for hit in body["results"]] and len(body["results"]) == 3
    plain = post(t, "/v1/search", {"query": "LGBTQ support group", "cube_ids": [cube], "top_k": 3})
    assert plain["routing"] is None
    err = assert_error(t.http.post("/v1/search", json={"query": "x", "cube_ids": [cube], "budget": "low",
                                                       "mode": "fine"}), 422, "validation_error")
    assert "budget picks the retrieval tier" in str(err["details"])


def test_full_context_when_everything_fits_and_not_otherwise(tenant: TenantCtx,
                                                             convo: tuple[TenantCtx, str, list[Json]]) -> None:
    small = make_cube(tenant, "small")
    r = tenant.http.post(f"/v1/cubes/{small}/memories", json={"memories": [
        {"content": "Alice moved to Berlin", "occurred_at": "2021-06-01T00:00:00Z"},
        {"content": "Alice is allergic to peanuts", "occurred_at": "2020-01-01T00:00:00Z"},
        {"content": "Alice adopted a cat named Miso", "occurred_at": "2022-03-01T00:00:00Z"}]})
    assert r.status_code == 201, r.text
    body = context(tenant, small, "Where does Alice live?", "mid")
    assert body["full_context"] is True and body["abstained"] is False
    # All of it, the most relevant first, each line dated.
    assert [i["content"] for i in body["items"]] == ["Alice moved to Berlin", "Alice is allergic to peanuts",
                                                     "Alice adopted a cat named Miso"]
    assert body["context"] == ("- [2021-06-01] Alice moved to Berlin\n- [2020-01-01] Alice is allergic to peanuts\n"
                               "- [2022-03-01] Alice adopted a cat named Miso")
    reason = "rule: full context (all 3 memories fit in 1024 tokens)"
    assert body["routing"]["reasons"] == {"retrieval": reason, "context": reason}
    # The same cube under a budget smaller than all of it: retrieval as usual.
    tight = context(tenant, small, "Where does Alice live?", {"max_tokens": 12})
    assert tight["full_context"] is False and tight["tokens"] <= 12
    t, cube, _ = convo
    big = context(t, cube, WHEN, {"max_tokens": 200})
    assert big["full_context"] is False and 0 < big["tokens"] <= 200


def test_abstains_off_topic_and_not_on_topic(convo: tuple[TenantCtx, str, list[Json]]) -> None:
    t, cube, _ = convo
    for tier in ("low", "mid", "high", "auto"):
        off = context(t, cube, OFF_TOPIC, tier)
        assert (off["abstained"], off["items"], off["context"], off["tokens"]) == (True, [], "", 0)
        assert off["routing"]["reasons"]["context"].startswith("rule: abstained (best cosine 0.")
        on = context(t, cube, WHEN, tier)
        assert on["abstained"] is False and on["items"]


def test_budget_refusals_are_422_with_the_reason(convo: tuple[TenantCtx, str, list[Json]]) -> None:
    t, cube, _ = convo
    base = {"query": WHEN, "cube_ids": [cube]}
    for budget in ("ultra", {"max_tokens": -5}, {"max_tokens": 0}, {"max_tokens": 2_000_000}, {"max_ms": 0},
                   {"max_ms": 700_000}, {"max_llm_calls": -1}, {"max_llm_calls": 101}, {"tiers": {"context": "max"}},
                   {"tiers": {"memory": "low"}}, {"max_tokens": 10, "extra": 1}):
        assert_error(t.http.post("/v1/context", json={**base, "budget": budget}), 422, "validation_error")
    # No LLM on this server: the LLM answer tiers are refused when named, never silently replaced ...
    for budget in ("mid", "high", {"tiers": {"answer": "high"}}):
        err = assert_error(t.http.post("/v1/answer", json={**base, "budget": budget}), 422, "invalid_input")
        assert "needs an LLM and none is configured" in err["message"] and err["details"]["module"] == "answer"
    err = assert_error(t.http.post(f"/v1/cubes/{cube}/messages", json={
        "session_id": "s9", "budget": "high", "messages": [{"role": "user", "content": "hi there"}]}),
        422, "invalid_input")
    assert err["details"] == {"field": "budget", "module": "extraction", "tier": "high"}
    # ... while context's high tier needs none (its summaries are extractive without an LLM).
    assert context(t, cube, WHEN, "high")["routing"]["cost"]["llm_calls"] == 0


def test_corrupt_router_file_falls_back_to_rules_with_a_warning(
        live_server: LiveServer, convo: tuple[TenantCtx, str, list[Json]]) -> None:
    t, cube, _ = convo
    router = live_server.settings.data_dir / "router"
    router.mkdir(exist_ok=True)
    bad = router / "policy-v7.json"
    bad.write_text("{not json")
    try:
        routing = context(t, cube, WHEN, "auto")["routing"]
        assert routing["warnings"] == ["router policy v7 unreadable (JSONDecodeError); using rules"]
        assert routing["tiers"]["retrieval"] == "high" and routing["policy"] is None
    finally:
        bad.unlink()
    assert context(t, cube, WHEN, "auto")["routing"]["warnings"] == [NO_POLICY]  # no file: rules, and says so


# -- answers, with the fake OpenAI-compatible server as the LLM -------------------------------------------------

@pytest.fixture(scope="module")
def llm_server(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """A second server configured with an LLM (the fake one) and distinct small / large model names."""
    with fake_llm_server() as fake:
        settings = make_settings(databases, Path(tmp_path_factory.mktemp("llm")), llm_base_url=fake.url,
                                 llm_model_small="small-model", llm_model_large="large-model",
                                 activation_models_dir=MODELS_DIR, activation_torch_threads=1)
        with serve_in_thread(settings) as url:
            yield url, (settings, fake)


def test_answer_tiers_call_the_configured_models(llm_server: tuple[str, Any]) -> None:
    url, (settings, fake) = llm_server
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {settings.admin_key}"}, timeout=120) as a:
        body = a.post("/v1/tenants", json={"name": "answers"}).json()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {body['api_key']}"}, timeout=120) as http:
        t = TenantCtx(id=body["id"], key=body["api_key"], http=http)
        cube = make_cube(t, "alice")
        r = http.post(f"/v1/cubes/{cube}/memories", json={"memories": [
            {"content": "Alice's puppy is called Rex", "occurred_at": "2023-01-05T00:00:00Z"},
            {"content": "Alice works as a nurse", "occurred_at": "2023-02-01T00:00:00Z"}]})
        assert r.status_code == 201, r.text
        question = "What is the name of Alice's puppy?"
        for tier, model in (("mid", "small-model"), ("high", "large-model")):
            before = len(fake.requests)
            out = post(t, "/v1/answer", {"query": question, "cube_ids": [cube], "budget": tier, "use_cache": False})
            assert (out["answer"], out["model"], out["abstained"], out["full_context"]) == ("Rex", model, False, True)
            assert out["routing"]["tiers"] == {"retrieval": tier, "context": tier, "answer": tier}
            assert out["routing"]["cost"]["llm_calls"] == 1 and len(fake.requests) == before + 1
            sent = fake.requests[-1]
            assert sent["model"] == model and f"Question: {question}" in sent["messages"][-1]["content"]
            assert "- [2023-01-05] Alice's puppy is called Rex" in sent["messages"][-1]["content"]
        # Off topic, and the cube does not fit the budget whole: no call at all.
        before = len(fake.requests)
        off = post(t, "/v1/answer", {"query": OFF_TOPIC, "cube_ids": [cube],
                                     "budget": {"max_tokens": 6, "tiers": {"answer": "high"}}})
        assert (off["answer"], off["model"], off["abstained"], off["items"]) == (None, None, True, [])
        assert off["routing"]["cost"]["llm_calls"] == 0 and len(fake.requests) == before
        # max_llm_calls 0 refuses a named LLM tier, and makes auto route to the local model's tier ...
        err = assert_error(http.post("/v1/answer", json={"query": question, "cube_ids": [cube],
                                                        "budget": {"max_llm_calls": 0, "tiers": {"answer": "mid"}}}),
                           422, "invalid_input")
        assert err["details"] == {"field": "budget.max_llm_calls", "needed": 1, "limit": 0}
        # ... and with one call allowed, auto answers with an LLM and the high context writes no LLM summary.
        one = post(t, "/v1/context", {"query": question, "cube_ids": [cube], "use_cache": False,
                                      "budget": {"max_llm_calls": 1, "tiers": {"context": "high"}}})
        assert one["routing"]["cost"]["llm_calls"] <= 1


def llm_tenant(url: str, settings: Any) -> TenantCtx:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {settings.admin_key}"}, timeout=120) as a:
        body = a.post("/v1/tenants", json={"name": f"t-{uuid.uuid4().hex[:12]}"}).json()
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {body['api_key']}"}, timeout=300)
    return TenantCtx(id=body["id"], key=body["api_key"], http=http)


def test_high_extraction_calls_the_llm_and_falls_back_to_rules(llm_server: tuple[str, Any]) -> None:
    url, (settings, fake) = llm_server
    t = llm_tenant(url, settings)
    cube = make_cube(t)
    before = len(fake.requests)
    r = t.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": "s1", "budget": "high", "messages": [
        {"role": "user", "speaker": "Alice", "content": "I moved to Lisbon last spring."}]})
    assert r.status_code == 201, r.text
    body = r.json()
    sent = fake.requests[before:]
    assert len(sent) == 1 and sent[0]["model"] == "large-model" and sent[0]["response_format"] == {
        "type": "json_object"}
    assert "Alice: I moved to Lisbon last spring." in sent[0]["messages"][-1]["content"]
    # The fake model does not answer in JSON: the rule-based facts stand in, and routing says so.
    assert [m["content"] for m in body["memories"]] == ["I moved to Lisbon last spring.",
                                                        "Alice moved to Lisbon last spring"]
    assert body["routing"]["tiers"] == {"extraction": "high"} and body["routing"]["cost"]["llm_calls"] == 1
    assert body["routing"]["warnings"] == ["LLM extraction failed (JSONDecodeError); rule-based facts used"]
    low = t.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": "s2", "budget": "low", "messages": [
        {"role": "user", "speaker": "Alice", "content": "I work at the harbour clinic now."}]}).json()
    assert [m["content"] for m in low["memories"]] == ["I work at the harbour clinic now."]
    assert low["routing"]["cost"]["llm_calls"] == 0 and len(fake.requests) == before + 1
    t.http.close()


def test_low_answer_runs_the_local_model(llm_server: tuple[str, Any]) -> None:
    """max_llm_calls 0 leaves auto only the local SmolLM2, and routing says why."""
    url, (settings, fake) = llm_server
    t = llm_tenant(url, settings)
    cube = make_cube(t)
    r = t.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "Alice's puppy is called Rex"}]})
    assert r.status_code == 201, r.text
    before = len(fake.requests)
    out = post(t, "/v1/answer", {"query": "What is the name of Alice's puppy?", "cube_ids": [cube],
                                 "budget": {"max_llm_calls": 0}})
    assert out["routing"]["tiers"]["answer"] == "low" and out["model"] == "smollm2-135m-instruct"
    assert "answer: mid, high not available (max_llm_calls is 0); routed among low" in out["routing"]["warnings"]
    assert out["answer"] and out["routing"]["cost"]["llm_calls"] == 0 and len(fake.requests) == before
    assert out["routing"]["cost"]["ms"]["answer"] > 0
    t.http.close()


def test_other_tenants_and_ungranted_cubes_are_404(tenant: TenantCtx, other_tenant: TenantCtx, cube: str,
                                                   live_server: LiveServer) -> None:
    theirs = make_cube(other_tenant)
    for path in ("/v1/context", "/v1/answer", "/v1/search"):
        r = tenant.http.post(path, json={"query": "anything", "cube_ids": [cube, theirs], "budget": "low"})
        assert_error(r, 404, "not_found")
    r = tenant.http.post(f"/v1/tenants/{tenant.id}/keys", json={"name": "reader", "cube_ids": [cube],
                                                                 "permission": "read"})
    assert r.status_code == 201, r.text
    mine = make_cube(tenant, "not-shared")
    with live_server.client(r.json()["api_key"]) as reader:
        ok = reader.post("/v1/context", json={"query": "anything", "cube_ids": [cube], "budget": "low"})
        assert ok.status_code == 200 and ok.json()["abstained"] is True  # an empty cube: nothing to return
        assert_error(reader.post("/v1/context", json={"query": "x", "cube_ids": [mine], "budget": "low"}),
                     404, "not_found")
        assert_error(reader.post(f"/v1/cubes/{cube}/messages", json={
            "session_id": "s", "budget": "mid", "messages": [{"role": "user", "content": "hello there"}]}),
            403, "permission_denied")


def test_a_trained_policy_decides_deterministically_and_reports_itself(
        live_server: LiveServer, tenant: TenantCtx, tmp_path: Path) -> None:
    """A policy trained (by ``memcubed router train``'s code) on a log where only "when" questions need high
    retrieval takes effect without a restart, decides the same way on every call, and says which it is."""
    t, cube = tenant, make_cube(tenant)
    r = t.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [
        {"content": "Ann moved to Paris in 2019"}, {"content": "Ann's dog is called Rex"}]})
    assert r.status_code == 201, r.text
    data_dir = live_server.settings.data_dir
    trained = train(write_log(tmp_path / "log.jsonl"), data_dir, lam=0.1)
    try:
        for query, tiers in (("When did Ann move to Paris?", {"retrieval": "high", "context": "low"}),
                             ("What is the name of Ann's dog?", {"retrieval": "low", "context": "low"})):
            # 5 tokens: too few for everything, so no full-context shortcut; the policy routes.
            first, again = (context(t, cube, query, {"max_tokens": 5})["routing"] for _ in range(2))
            assert first["tiers"] == tiers and first["policy"] == {"version": trained.version, "lambda": 0.1}
            assert all(r.startswith(f"policy v{trained.version}: score ") for r in first["reasons"].values())
            assert first["warnings"] == [] and (again["tiers"], again["reasons"]) == (first["tiers"], first["reasons"])
        # Forced tiers stay forced under a policy too.
        budget = {"max_tokens": 5, "tiers": {"retrieval": "low"}}
        forced = context(t, cube, "When did Ann move to Paris?", budget)["routing"]
        assert forced["tiers"]["retrieval"] == "low" and forced["reasons"]["retrieval"] == "forced"
    finally:
        trained.header_path.unlink()
        trained.model_path.unlink()
    assert context(t, cube, "When did Ann move to Paris?", {"max_tokens": 5})["routing"]["policy"] is None


def test_high_context_writes_one_llm_summary_when_calls_allow(llm_server: tuple[str, Any]) -> None:
    url, (settings, fake) = llm_server
    t = llm_tenant(url, settings)
    cube = make_cube(t)
    turns = [("Alice", "I adopted a puppy called Rex last week."), ("Bob", "Congrats, what breed is he?"),
             ("Alice", "A beagle, he loves long walks by the river."), ("Bob", "We should walk together soon."),
             ("Alice", "Sure, Saturday morning works for me."), ("Bob", "Great, I will bring coffee."),
             ("Alice", "Rex also met the neighbours' cat today."), ("Bob", "How did that go?"),
             ("Alice", "They ignored each other, which was funny."), ("Bob", "Classic cats and dogs.")]
    r = t.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": "s1", "messages": [
        {"role": "user", "speaker": sp, "content": text, "timestamp": f"2023-03-0{1 + i // 5}T10:0{i % 5}:00Z"}
        for i, (sp, text) in enumerate(turns)]})
    assert r.status_code == 201, r.text
    body: Json = {"query": "What is the name of Alice's puppy?", "cube_ids": [cube], "top_k": 1, "use_cache": False}
    before = len(fake.requests)
    out = post(t, "/v1/context", {**body, "budget": {"max_tokens": 100, "tiers": {"context": "high"}}})
    assert out["full_context"] is False and out["routing"]["cost"]["llm_calls"] == 1
    assert len(fake.requests) == before + 1 and fake.requests[-1]["model"] == "gpt-4o-mini"
    summary = [i for i in out["items"] if i["role"] == "summary"]
    assert [(i["memory_id"], i["session_id"], i["content"]) for i in summary] == [(None, "s1", "I don't know")]
    # No LLM call left: the same tier writes the extractive summary instead.
    none_left = post(t, "/v1/context", {**body, "budget": {"max_tokens": 100, "max_llm_calls": 0,
                                                           "tiers": {"context": "high"}}})
    assert none_left["routing"]["cost"]["llm_calls"] == 0 and len(fake.requests) == before + 1
    assert [i["role"] for i in none_left["items"]].count("summary") == 1
    t.http.close()


def test_a_cube_that_fits_is_never_hidden_by_abstention(tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "intro")
    turns = ["Hi! I'm setting up my new assistant.", "Great, happy to help.", "It's Priya Raman, by the way.",
             "Nice to meet you, Priya.", "I mostly need help planning trips."]
    r = tenant.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": "s1", "messages": [
        {"role": "user" if i % 2 == 0 else "assistant", "speaker": "user" if i % 2 == 0 else "assistant",
         "content": c} for i, c in enumerate(turns)]})
    assert r.status_code == 201, r.text
    out = context(tenant, cube, "What is the user's name?", "auto")
    assert (out["abstained"], out["full_context"], out["evidence"]) == (False, True, None)
    assert "Priya Raman" in out["context"]
    assert out["items"][0]["content"] == "It's Priya Raman, by the way."  # the most relevant first
    assert sorted(i["speaker"] for i in out["items"]) == ["assistant", "assistant", "user", "user", "user"]


def test_abstention_needs_every_channel_to_fall_short(tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "pets")
    facts = ["Alice adopted a beagle puppy and named him Rex.", "Alice takes Rex to the park every morning.",
             "Bob is learning to play the cello.", "Bob's cello teacher lives in Lyon.",
             "The weather was rainy all week.", "Carol bought a new bicycle for her commute."]
    r = tenant.http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": f} for f in facts]})
    assert r.status_code == 201, r.text
    tight = {"max_tokens": 16}  # the cube does not fit: retrieval runs and abstention may decide
    named = context(tenant, cube, "Which breed is Alice's dog?", tight)
    assert (named["abstained"], named["full_context"], named["evidence"]["names"]) == (False, False, 1.0)
    off = context(tenant, cube, OFF_TOPIC, tight)
    assert (off["abstained"], off["items"], off["evidence"]["overlap"], off["evidence"]["names"]) == (
        True, [], 0.0, 0.0)
    assert off["routing"]["reasons"]["context"].startswith("rule: abstained (best cosine 0.")
    assert "query words found 0.00 < 1, no name of the query found" in off["routing"]["reasons"]["context"]
