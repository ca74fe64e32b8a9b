"""Hostile text costs linear time: every rule-based text processor handles 1 MB of adversarial input within 50 ms,
and a hostile 1 MB message gets its 413 within 100 ms while /healthz keeps answering (median within 50 ms, none
over 250 ms).

Each timing is the best of three runs (time.perf_counter), so that another process on the shared CPUs cannot fail
a bound that the code meets; a quadratic pattern misses it by seconds, not milliseconds."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from app.budget import cache, features
from app.forget_requests import detector, kinds
from app.graph import extract, timeexpr
from app.memory import facts, text
from app.schemas.memories import MemoryIn
from app.services import admission
from tests.conftest import LiveServer, TenantCtx, assert_error

MB = 1024 * 1024

INPUTS: dict[str, str] = {
    "forget please": "forget " + "please " * (MB // 7),
    "forget please then a word": "forget " + "please " * (MB // 7) + "x",
    "forget it, sentence after sentence": "forget it. " * (MB // 11),
    "forget it, numbered sentences": " ".join(f"forget it {i}." for i in range(MB // 12)),
    "name then a run of spaces": "Alice" + " " * MB + "x",
    "run of spaces": " " * MB + "x",
    "repetition": "ab" * (MB // 2),
    "capitalised run": "Alice Bob " * (MB // 10),
    "greeting run": "Hey " * (MB // 4),
    "nested punctuation": "({[" * (MB // 6) + "]})" * (MB // 6),
    "trailing punctuation run": "?. !" * (MB // 4) + "x",
    "open braces": "{" * MB,
    "possessive then spaces": "my a is " + " " * MB + "x",
    "long subject": "My " + "a " * (MB // 2) + "is b",
    "one long word": "I live in " + "a" * MB,
    "numbers": "1.2.3.4 " * (MB // 8),
    "time words": "yesterday " * (MB // 10),
}

PROCESSORS: dict[str, Callable[[str], Any]] = {
    "detector.detect": detector.detect,
    "detector.might_be_request": detector.might_be_request,
    "detector.clean_subject": detector.clean_subject,
    "detector.parse_classifier_reply": lambda t: detector.parse_classifier_reply(t, "forget my address"),
    "extract.entities": extract.entities,
    "extract.keywords": extract.keywords,
    "timeexpr.extract_times": lambda t: timeexpr.extract_times(t, datetime(2023, 5, 8)),
    "cache.normalise": cache.normalise,
    "features.featurize": lambda t: features.featurize(t, 100, 3, False),
    "facts.facts_in": lambda t: facts.facts_in(t, "Ann"),
    "facts.correction_in": facts.correction_in,
    "facts.rule_facts": lambda t: facts.rule_facts(MemoryIn(content=t, metadata={"speaker": "Ann"})),
    "text.content_words": text.content_words,
    "kinds.kind_of": kinds.kind_of,
    "kinds.owned_by_another": lambda t: kinds.owned_by_another(t, ["birthday", "a"]),
    **{f"kinds.kind_owned_by_another[{k.name}]": lambda t, k=k: kinds.kind_owned_by_another(t, k)
       for k in kinds.KINDS},
    **{f"kinds.redact[{k.name}]": lambda t, k=k: kinds.redact(t[:32 * 1024], k) for k in kinds.KINDS},
    "admission.numbers": admission.numbers,
    "admission.meaningful_chars": admission.meaningful_chars,
}


def best_of_three(call: Callable[[], Any]) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


@pytest.mark.parametrize("name", list(PROCESSORS))
def test_text_processor_handles_1mb_of_adversarial_input_within_50ms(name: str) -> None:
    processor = PROCESSORS[name]
    slow = {kind: round(took * 1000, 1) for kind, text in INPUTS.items()
            if (took := best_of_three(lambda text=text: processor(text))) > 0.050}  # type: ignore[misc]
    assert slow == {}, f"{name} took over 50 ms (ms per input): {slow}"


def test_processors_still_read_normal_text() -> None:
    """The rewritten patterns give what they gave before on ordinary sentences."""
    assert extract.entities("Caroline went to the Bank of America with Mel   and Jon Snow.") == [
        "Caroline", "Bank of America", "Mel and Jon Snow"]
    assert cache.normalise("  What  did\tCaroline   do?? ") == "what did caroline do"
    assert detector.detect("Thanks! Please forget my home address, thanks.") == detector.Detection(
        subject="home address", sentence="Please forget my home address, thanks.")
    assert facts.facts_in("  José's new car is red.  ", "Ann") == [facts.Fact("josé|new car", "is", "red")]
    assert facts.facts_in("my " + "a" * 41 + " is red", "Ann") == []
    assert facts.rule_facts(MemoryIn(content=" I moved to Berlin! ", metadata={"speaker": "Ann"})) == [
        "Ann moved to Berlin"]
    assert features.time_expressions("yesterday, last week and 3 days ago, in May 2023") == 4


def hostile_message(size: int, budget: str | None) -> bytes:
    """A messages body of ``size`` bytes whose one message is "forget please please ..."."""
    body: dict[str, Any] = {"session_id": "s", "messages": [{"role": "user", "content": ""}]}
    if budget is not None:
        body["budget"] = budget
    room = size - len(json.dumps(body))
    body["messages"][0]["content"] = ("forget " + "please " * size)[:room]
    return json.dumps(body).encode()


def test_hostile_1mb_message_is_refused_fast_while_healthz_answers(live_server: LiveServer, tenant: TenantCtx,
                                                                   cube: str) -> None:
    """Over the body limit the middleware refuses it; just under, the service does, before reading a word."""
    limit = live_server.settings.max_body_bytes
    health: list[float] = []
    polling, measuring, stop = threading.Event(), threading.Event(), threading.Event()

    def poll_health() -> None:
        with httpx.Client(base_url=live_server.url, timeout=10) as client:
            client.get("/healthz")  # connect before timing
            polling.set()
            while not stop.is_set():
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                if measuring.is_set():
                    health.append(time.perf_counter() - started)

    bodies = {(size, budget): hostile_message(size, budget)
              for size in (limit + 1024, limit) for budget in (None, "mid")}
    assert all(len(body) == size for (size, _), body in bodies.items())
    # Connect, and take the route's first-call costs (imports, thread pool) before timing.
    r = tenant.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": "s", "messages": []})
    assert_error(r, 422, "validation_error")
    poller = threading.Thread(target=poll_health)
    poller.start()
    assert polling.wait(30)
    try:
        measuring.set()
        for (size, budget), body in bodies.items():
            def post(body: bytes = body) -> None:
                r = tenant.http.post(f"/v1/cubes/{cube}/messages", content=body,
                                     headers={"Content-Type": "application/json"})
                assert_error(r, 413, "payload_too_large")
            took = best_of_three(post)
            assert took <= 0.100, f"{size} bytes, budget={budget}: 413 after {took * 1000:.0f} ms"
        time.sleep(0.05)  # a few more checks once the last one is answered
    finally:
        stop.set()
        poller.join()
    assert health, "no health check ran"
    # The median says it answers within 50 ms; the max allows one scheduling hiccup on shared CPUs, not a stall.
    took = sorted(health)
    median, worst = took[len(took) // 2], took[-1]
    assert median <= 0.050 and worst <= 0.250, \
        f"/healthz during the hostile messages: median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms"
