"""The hygiene trap suite's scoring on hand-made responses, its data's shape, and one run against the live server."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.hygiene_bench import (
    DIMENSIONS,
    load_items,
    main,
    markdown,
    score_answerable,
    score_changed,
    score_deletion,
    score_entity_confusion,
    score_unanswerable,
    summarize,
)
from tests.conftest import LiveServer

Json = dict[str, Any]
SUPERSEDED = "3f1c7f5e-0000-4000-8000-000000000001"


def ctx(*contents: str, abstained: bool = False) -> Json:
    """A /v1/context response whose items hold ``contents`` in this order."""
    return {"context": "\n".join(f"- User: {c}" for c in contents), "abstained": abstained,
            "items": [{"content": c, "role": "snippet"} for c in contents]}


def search(*contents: str, superseded: dict[int, str] | None = None) -> Json:
    """A /v1/search response ranking ``contents`` in this order (``superseded``: rank -> superseded_by)."""
    return {"results": [{"score": 1.0 - i / 10, "memory": {"content": c, "superseded_by": (superseded or {}).get(i)}}
                        for i, c in enumerate(contents)]}


def passes(verdicts: dict[str, Json]) -> dict[str, bool]:
    return {route: v["pass"] for route, v in verdicts.items()}


def test_answerable_needs_the_answer_and_no_abstention() -> None:
    item = {"answers": ["Priya Raman", "Priya"]}
    hit = score_answerable(item, ctx("It's Priya Raman, by the way.", abstained=True),
                           search("Can you draft an email?", "It's PRIYA Raman, by the way."))
    assert hit == {"context": {"pass": False, "reason": "abstained"},
                   "search": {"pass": True, "reason": "answer at rank 2"}}
    miss = score_answerable(item, ctx("call me priya"), search("Can you draft an email?"))
    assert miss == {"context": {"pass": True, "reason": "found 'Priya'"},
                    "search": {"pass": False, "reason": "no answer in the results"}}


def test_unanswerable_passes_on_abstention_or_no_trap() -> None:
    item = {"traps": ["nurse"]}
    assert passes(score_unanswerable(item, ctx("My brother is a nurse.", abstained=True),
                                     search("My brother is a Nurse."))) == {"context": True, "search": False}
    assert passes(score_unanswerable(item, ctx("Mum is so proud."), search())) == {"context": True, "search": True}
    assert passes(score_unanswerable(item, ctx("He's a nurse now."), search("Mum is so proud."))) == {
        "context": False, "search": True}


def test_changed_wants_the_current_value_first_and_the_old_one_marked() -> None:
    item = {"current": ["Denver"], "old": ["Boston"]}
    stale, moved, both = "I live in Boston.", "We moved to Denver last month.", "We left Boston for Denver."
    assert passes(score_changed(item, ctx(stale, moved), search(stale, moved))) == {"context": False, "search": False}
    # after the current one: fine in context; in search only when the stale memory says what replaced it
    assert passes(score_changed(item, ctx(moved, stale), search(moved, stale))) == {"context": True, "search": False}
    assert score_changed(item, ctx(moved), search(moved, stale, superseded={1: SUPERSEDED}))["search"] == {
        "pass": True, "reason": "current at 1, old only after it and marked superseded"}
    # a text with both values presents the current one
    assert passes(score_changed(item, ctx(both), search(both))) == {"context": True, "search": True}
    assert score_changed(item, ctx(moved, abstained=True), search(stale)) == {
        "context": {"pass": False, "reason": "abstained"},
        "search": {"pass": False, "reason": "current value absent (old value returned)"}}


def test_entity_confusion_wants_the_answer_before_any_confuser() -> None:
    item = {"answers": ["ramen"], "confusers": ["sushi", "tacos"]}
    tom, ana = "Tom loves sushi.", "Ana loves ramen."
    assert passes(score_entity_confusion(item, ctx(tom, ana), search(tom, ana))) == {"context": False, "search": False}
    assert passes(score_entity_confusion(item, ctx(ana, tom), search(ana, tom))) == {"context": True, "search": True}
    assert score_entity_confusion(item, ctx("Ana likes tacos."), search()) == {
        "context": {"pass": False, "reason": "no answer returned (a confuser was)"},
        "search": {"pass": False, "reason": "no answer returned"}}


def test_deletion_checks_every_route_for_leaks_and_kept_values() -> None:
    item = {"forgotten_values": ["K4471932"], "kept_values": ["2 May"]}
    sister = "My sister's birthday is 2 May."

    def probes(**changes: Any) -> Json:
        base = {"context": ctx("[forget request: passport number]"), "kept_context": ctx(sister),
                "searches": {"What is the passport number?": search("Noted."), "K4471932": search("Noted."),
                             "2 May": search(sister)},
                "memories": [{"content": "Noted."}, {"content": sister}], "entities": [{"name": "User"}]}
        return {**base, **changes}

    clean = score_deletion(item, probes())
    assert passes(clean) == {"context": True, "search": True, "memories": True, "entities": True}
    assert clean["memories"]["reason"] == "nothing forgotten returned, kept values found"

    leaked = score_deletion(item, probes(memories=[{"content": "My passport is k4471932"}, {"content": sister}],
                                         entities=[{"name": "K4471932"}]))
    assert passes(leaked) == {"context": True, "search": True, "memories": False, "entities": False}
    assert leaked["memories"]["reason"] == "forgotten 'K4471932' returned"

    lost = score_deletion(item, probes(searches={"K4471932": search("Noted."), "2 May": search("Noted.")},
                                       kept_context=ctx("Noted."), entities=None))
    assert passes(lost) == {"context": False, "search": False, "memories": True}
    assert lost["search"]["reason"] == "kept '2 May' not found"


def test_summary_and_table_count_per_dimension_and_route() -> None:
    ok, bad = {"pass": True, "reason": ""}, {"pass": False, "reason": ""}
    results = [{"dimension": "answerable", "routes": {"context": ok, "search": bad}},
               {"dimension": "answerable", "routes": {"context": ok, "search": ok}},
               {"dimension": "deletion", "routes": {"context": bad, "search": ok, "memories": ok}}]
    dims = summarize(results)
    assert dims == {"answerable": {"context": {"passed": 2, "total": 2, "rate": 1.0},
                                   "search": {"passed": 1, "total": 2, "rate": 0.5}},
                    "deletion": {"context": {"passed": 0, "total": 1, "rate": 0.0},
                                 "search": {"passed": 1, "total": 1, "rate": 1.0},
                                 "memories": {"passed": 1, "total": 1, "rate": 1.0}}}
    table = markdown({"date": "d", "commit": "0123456789abc", "loadavg": [1.0, 1.0, 1.0], "items": 3,
                      "dimensions": dims})
    assert "| answerable | 2 | 2/2 (100%) | 1/2 (50%) | — | — | ≥ 95% |" in table
    assert "| deletion | 1 | 0/1 (0%) | 1/1 (100%) | 1/1 (100%) | — | ≥ 95% |" in table


def test_data_has_every_dimension_with_enough_varied_items() -> None:
    items = load_items()
    counts = Counter(i["dimension"] for i in items)
    assert set(counts) == set(DIMENSIONS) and min(counts.values()) >= 30 and len(items) >= 150
    for item in items:
        turns = [t for call in item["turns"] for t in call]
        assert 3 <= len(turns) <= 40, item["id"]
        assert all(t["role"] in ("user", "assistant") and t["speaker"] and t["content"] for t in turns), item["id"]
    assert sum(len(i["turns"]) > 1 for i in items) >= 50  # split over calls
    assert sum(len([t for c in i["turns"] for t in c]) >= 20 for i in items) >= 5  # long conversations


def test_runner_end_to_end_on_one_item_per_dimension(live_server: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "hygiene.json"
    assert main(["--url", live_server.url, "--api-key", live_server.admin_key, "--per-dimension", "1",
                 "--out", str(out), "--no-progress", "--enrich-timeout", "120"]) == 0
    report = json.loads(out.read_text())
    assert report["items"] == 5 and report["not_enriched"] == []
    assert "--api-key KEY" in report["command"] and live_server.admin_key not in report["command"]
    assert len(report["loadavg"]) == 3 and report["commit"]
    assert [r["dimension"] for r in report["results"]] == list(DIMENSIONS)
    for r in report["results"]:
        extra = ["memories", "entities"] if r["dimension"] == "deletion" else []
        assert list(r["routes"]) == ["context", "search", *extra]
        assert all(isinstance(v["pass"], bool) and v["reason"] for v in r["routes"].values())
    assert {d: {route: s["total"] for route, s in routes.items()} for d, routes in report["dimensions"].items()} == {
        **{d: {"context": 1, "search": 1} for d in DIMENSIONS[:4]},
        "deletion": {"context": 1, "search": 1, "memories": 1, "entities": 1}}
    table = out.with_suffix(".md").read_text()
    assert all(f"| {d} | 1 |" in table for d in DIMENSIONS)
