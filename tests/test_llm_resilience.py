"""The LLM endpoint degrades the service, never stalls it: a slow endpoint times out, a failing one is retried once,
repeated failures open the circuit breaker (calls skip the LLM at once, /readyz says so) until a trial call after
the cool-down succeeds; every response that could have used the LLM says what happened (``llm``), and /metrics
counts the calls by outcome. Against the fake OpenAI-compatible HTTP server, slowed down or failing on demand."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.embedded import serve_in_thread
from tests.conftest import Databases, assert_error, make_settings
from tests.evals.fake_llm import FakeLLM, fake_llm_server

Json = dict[str, Any]
TIMEOUT = 0.5
COOLDOWN = 4.0  # long enough for the open-state checks below on a loaded machine
FAILURES = 3


@pytest.fixture(scope="module")
def served(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, FakeLLM]]:
    with fake_llm_server() as fake:
        # Only the classifier (and the named tiers) call the LLM here, so calls are counted exactly.
        settings = make_settings(databases, Path(tmp_path_factory.mktemp("llm")), llm_base_url=fake.url,
                                 supersede_llm=False, llm_timeout_seconds=TIMEOUT, llm_retries=1,
                                 llm_breaker_failures=FAILURES, llm_breaker_cooldown_seconds=COOLDOWN)
        with serve_in_thread(settings) as url:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {settings.admin_key}"},
                              timeout=60) as a:
                key = a.post("/v1/tenants", json={"name": "llm"}).json()["api_key"]
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
                yield http, fake


@pytest.fixture
def cube(served: tuple[httpx.Client, FakeLLM]) -> str:
    """A new cube, the endpoint healthy, and the breaker closed (an earlier test may have left it open)."""
    http, fake = served
    fake.delay, fake.fail_always = 0.0, None
    made = str(http.post("/v1/cubes", json={"name": f"c-{uuid.uuid4()}"}).json()["id"])
    if "llm" in http.get("/readyz").json().get("degraded", {}):
        time.sleep(COOLDOWN + 0.2)
    assert forget(http, made)[0]["llm"] == {"used": True, "fallback": None}
    return made


def forget(http: httpx.Client, cube: str, **extra: Any) -> tuple[Json, float]:
    """A message the classifier is asked about (it has a memory verb), and how long the write took."""
    started = time.monotonic()
    r = http.post(f"/v1/cubes/{cube}/messages", json={
        "session_id": "s", "messages": [{"role": "user", "content": "Forget my address."}], **extra})
    assert r.status_code == 201, r.text
    return r.json(), time.monotonic() - started


def calls(http: httpx.Client) -> dict[str, float]:
    families = text_string_to_metric_families(http.get("/metrics").text)
    return {s.labels["outcome"]: s.value for f in families if f.name == "memcubed_llm_calls"
            for s in f.samples if s.name == "memcubed_llm_calls_total"}


def test_a_slow_llm_times_out_and_the_rules_decide(served: tuple[httpx.Client, FakeLLM], cube: str) -> None:
    http, fake = served
    ok, _ = forget(http, cube)
    assert ok["llm"] == {"used": True, "fallback": None} and ok["forget_request_id"] is None  # the fake says no
    ready = http.get("/readyz").json()
    assert (ready["status"], ready["checks"], "degraded" in ready) == (
        "ready", {"database": True, "index": True, "llm": True}, False)
    fake.delay = 3.0
    before, sent = calls(http), len(fake.requests)
    out, took = forget(http, cube)
    assert out["llm"] == {"used": False, "fallback": "timeout"}
    assert out["forget_request_id"] is not None  # the rules read "Forget my address."
    assert took < 2.0, took  # the time-out, not the endpoint's 3 s
    assert len(fake.requests) == sent + 1  # a time-out is not retried
    assert calls(http)["timeout"] == before["timeout"] + 1


def test_a_failing_llm_is_retried_then_the_rules_decide(served: tuple[httpx.Client, FakeLLM], cube: str) -> None:
    http, fake = served
    fake.fail_always = 503
    before, sent = calls(http), len(fake.requests)
    out, _ = forget(http, cube)
    assert out["llm"] == {"used": False, "fallback": "error"} and out["forget_request_id"] is not None
    assert len(fake.requests) == sent + 2  # the call and one retry
    assert calls(http)["error"] == before["error"] + 1
    # A budget's high extraction tier falls back to the rule-based facts and says so in its routing too.
    routed, _ = forget(http, cube, budget={"tiers": {"extraction": "high"}})
    assert routed["llm"] == routed["routing"]["llm"] == {"used": False, "fallback": "error"}
    assert routed["routing"]["warnings"] == ["LLM extraction failed (LLMUnavailable); rule-based facts used"]


def test_the_breaker_opens_after_repeated_failures_and_closes_after_the_cooldown(
        served: tuple[httpx.Client, FakeLLM], cube: str) -> None:
    http, fake = served
    answer = {"query": "What is Alice's puppy called?", "cube_ids": [cube], "budget": "mid", "use_cache": False}
    http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "Alice's puppy is called Rex"}]})
    answered = http.post("/v1/answer", json=answer)  # also loads the answer model's tokenizer before the clock runs
    assert answered.status_code == 200, answered.text
    assert answered.json()["routing"]["llm"] == {"used": True, "fallback": None}
    fake.fail_always = 500
    for _ in range(FAILURES):
        assert forget(http, cube)[0]["llm"] == {"used": False, "fallback": "error"}
    before, sent = calls(http), len(fake.requests)
    out, _ = forget(http, cube)
    assert out["llm"] == {"used": False, "fallback": "circuit_open"} and out["forget_request_id"] is not None
    assert len(fake.requests) == sent and calls(http)["circuit_open"] == before["circuit_open"] + 1
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["llm"] is False
    assert ready.json()["degraded"]["llm"].startswith(f"circuit open after {FAILURES} failed calls in a row")
    # The answer tiers have no local fallback: a 503 that says why, without waiting on the endpoint.
    err = assert_error(http.post("/v1/answer", json=answer), 503, "not_ready")
    assert err["details"]["llm"] == {"used": False, "fallback": "circuit_open"}, err
    assert len(fake.requests) == sent
    # After the cool-down one trial call goes through; the endpoint is back, so the breaker closes.
    fake.fail_always = None
    time.sleep(COOLDOWN + 0.2)
    assert http.get("/readyz").json()["degraded"]["llm"].startswith("circuit half_open")
    assert forget(http, cube)[0]["llm"] == {"used": True, "fallback": None}
    assert http.get("/readyz").json()["status"] == "ready"
