"""``memcubed-eval abstention``: the evidence collected through /v1/context reproduces the service's decision
offline, and the floors are chosen on one half of the conversations and reported on the other (hand-made evidence
and two synthetic LoCoMo-format conversations; never the real data)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import memcubed
from typer.testing import CliRunner

from app.config import Settings
from benchmarks.render import table_markdown
from evals.abstention import SHIPPED, Asked, choose, collect, cross_validate, load_evidence, rates, results_file
from evals.cli import eval_app
from evals.runner import ServiceTarget
from tests.evals.tiny import tiny_locomo


def test_the_shipped_floors_are_the_services() -> None:
    settings = Settings()
    assert (settings.abstain_floor, settings.abstain_overlap_floor) == SHIPPED


def _asked(conv: str, own: list[float], foreign: list[float]) -> list[Asked]:
    """Answerable asks at the ``own`` cosines, unanswerable ones at ``foreign``; no word or name evidence."""
    return ([Asked(conv, "own", c, 0.0, None, False) for c in own]
            + [Asked(conv, "foreign", c, 0.0, None, False) for c in foreign])


def test_floors_abstain_on_the_most_unanswerable_questions_within_the_false_abstention_allowed() -> None:
    asked = _asked("c1", [0.30, 0.50, 0.60], [0.10, 0.20, 0.34])
    # 0.30 is the lowest answerable cosine: no floor above it; the lowest floor that abstains on 0.1 and 0.2 wins.
    assert choose(asked, max_false=0.0) == (0.22, 0.2)
    assert rates(asked, 0.22, 0.2) == {"own": 0.0, "foreign": 2 / 3, "adversarial": None}
    # Allowed one false abstention in three, the floor may pass 0.30 and 0.34 (every unanswerable one).
    assert choose(asked, max_false=0.34) == (0.36, 0.2)
    # Words or a name of the query found always answer, whatever the cosine.
    assert rates([Asked("c1", "foreign", 0.0, 0.5, None, False), Asked("c1", "foreign", 0.0, 0.0, 0.5, False)],
                 0.8, 0.5) == {"own": None, "foreign": 0.0, "adversarial": None}


def test_each_fold_reports_on_conversations_its_floors_never_saw() -> None:
    # In c1/c2 answerable questions sit at 0.3 and unanswerable at 0.2; in c3/c4 at 0.5 and 0.4.
    asked = (_asked("c1", [0.3], [0.2]) + _asked("c2", [0.3], [0.2])
             + _asked("c3", [0.5], [0.4]) + _asked("c4", [0.5], [0.4]))
    cv = cross_validate(asked, repeats=3, max_false=0.0)
    assert len(cv["folds"]) == 6
    for fold in cv["folds"]:
        assert not set(fold["tuned_on"]) & set(fold["reported_on"])
        low = bool({"c1", "c2"} & set(fold["tuned_on"]))
        # Tuned with a low conversation the floor stays under 0.3; on the two high ones it is 0.42, which then
        # abstains on every question of the low ones it is reported on.
        assert fold["cosine_floor"] == (0.22 if low else 0.42)
        assert fold["out_of_sample"]["own"] == (0.0 if low else 1.0)
    assert cv["counts"] == {"own": 4, "foreign": 4, "adversarial": 0}
    # The hand-made lines all say "answered"; the shipped floors would abstain on all (every cosine is under 0.53).
    assert cv["service_agreement"] == 0.0
    report = results_file(cv, "memcubed-eval abstention --evidence e.jsonl")
    assert report["command"] == "memcubed-eval abstention --evidence e.jsonl" and report["commit"] and report["load"]
    text = "\n".join(table_markdown(t) for t in report["tables"].values())
    assert "| **chosen per fold** | **the other half (out-of-sample, mean)** |" in text


def _conversation(sample: str, speakers: tuple[str, str], topic: str, turns: int) -> dict[str, Any]:
    """A LoCoMo-format conversation too long for the default context budget, about one topic."""
    base = tiny_locomo()[0]
    session = [{"speaker": speakers[i % 2], "dia_id": f"D1:{i + 1}",
                "text": f"Day {i} of my {topic} project: today I worked on part {i} and it went fine, more tomorrow."}
               for i in range(turns)]
    qa = [{"question": f"How did {speakers[0]}'s {topic} project go on day 3?", "answer": "fine",
           "evidence": ["D1:4"], "category": 4},
          {"question": f"What did {speakers[1]} adopt?", "adversarial_answer": "a cat", "evidence": ["D1:2"],
           "category": 5}]
    return {**base, "sample_id": sample, "qa": qa,
            "conversation": {"speaker_a": speakers[0], "speaker_b": speakers[1],
                             "session_1_date_time": "1:56 pm on 8 May, 2023", "session_1": session}}


def test_collected_evidence_reproduces_the_services_decision(live_server: Any, tmp_path: Path) -> None:
    dataset = tmp_path / "two.json"
    dataset.write_text(json.dumps([_conversation("conv-a", ("Alice", "Bob"), "pottery", 90),
                                   _conversation("conv-b", ("Chen", "Dana"), "rocket", 90)]))
    with memcubed.Client(live_server.url, live_server.admin_key) as admin:
        key = admin.tenants.create(f"abstain-{uuid.uuid4().hex[:8]}").api_key
    path = collect(dataset, ServiceTarget(live_server.url, key), None, tmp_path / "evidence.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["conversation"], r["kind"]) for r in rows] == [
        ("conv-a", "own"), ("conv-a", "foreign"), ("conv-a", "adversarial"),
        ("conv-b", "own"), ("conv-b", "foreign"), ("conv-b", "adversarial")]
    asked = load_evidence(path)
    # In its own cube the question's name and topic are found; in the other conversation's, neither is.
    assert [(a.kind, a.names) for a in asked if a.kind != "adversarial"] == [
        ("own", 1.0), ("foreign", 0.0), ("own", 1.0), ("foreign", 0.0)]
    assert [a.abstained for a in asked] == [rates([a], *SHIPPED)[a.kind] == 1.0 for a in asked]
    result = CliRunner().invoke(eval_app, ["abstention", "--evidence", str(path), "--repeats", "1",
                                           "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "abstention.json").read_text())
    assert saved["service_agreement"] == 1.0 and len(saved["folds"]) == 2
    assert saved["counts"] == {"own": 2, "foreign": 2, "adversarial": 2}
