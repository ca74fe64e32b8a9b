"""Loaders: the tiny LoCoMo-format conversation, the LongMemEval fixture, clear errors on anything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from evals.datasets import DatasetFormatError, EvidenceStats, load_locomo, load_longmemeval, resolve_evidence
from tests.evals.tiny import tiny_locomo, write_tiny_locomo

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "longmemeval" / "longmemeval_fixture.json"


def test_locomo_tiny_shape(tmp_path: Path) -> None:
    ds = load_locomo(write_tiny_locomo(tmp_path))
    assert ds.name == "locomo" and len(ds.sha256) == 64
    (conv,) = ds.conversations
    assert conv.id == "conv-t1" and conv.speakers == ("Alice", "Bob")
    assert [s.id for s in conv.sessions] == ["session_1", "session_2"]  # session_3 has a date only
    assert conv.sessions[0].date == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert conv.sessions[1].date == datetime(2023, 6, 20, 10, 0, tzinfo=UTC)
    turns = conv.turns
    assert [t.id for t in turns] == ["D1:1", "D1:2", "D1:3", "D2:1", "D2:2", "D2:3"]
    assert [t.position for t in turns] == [0, 1, 2, 3, 4, 5]
    assert turns[0].content == "Alice: I adopted a puppy named Rex last week."
    assert turns[2].content == (
        "Alice: He is a golden retriever. [shares a photo of a golden retriever puppy on grass]"
    )
    assert turns[3].session_id == "session_2" and turns[3].occurred_at == conv.sessions[1].date


def test_locomo_questions_categories_and_evidence(tmp_path: Path) -> None:
    ds = load_locomo(write_tiny_locomo(tmp_path))
    qs = ds.conversations[0].questions
    assert [q.id for q in qs] == [f"conv-t1/q{i}" for i in range(6)]
    assert [q.category for q in qs] == [
        "single-hop",
        "temporal",
        "multi-hop",
        "adversarial",
        "open-domain",
        "single-hop",
    ]
    assert [q.headline for q in qs] == [True, True, True, False, True, True]
    assert qs[3].abstention and qs[3].answer == "" and qs[3].adversarial_answer == "golden retriever"
    assert qs[4].answer == "2"  # ints in the file become strings
    assert qs[2].evidence == ("D2:1", "D2:3") and qs[2].evidence_sessions == ("session_2",)
    assert qs[4].evidence == ("D1:1", "D2:3")  # repaired from "D1:1; D2:03"
    assert qs[4].evidence_sessions == ("session_1", "session_2")
    assert qs[4].raw_evidence == ("D1:1; D2:03",)
    assert qs[5].evidence == ()
    assert ds.evidence_stats.as_dict() == {
        "total": 8,
        "exact": 5,
        "repaired": 1,
        "unresolved": 2,
        "unresolved_entries": [
            {"question": "conv-t1/q5", "entry": "D9:9", "reason": "no turn with this id"},
            {"question": "conv-t1/q5", "entry": "D", "reason": "no turn id in entry"},
        ],
        "questions_without_evidence": 1,
    }


@pytest.mark.parametrize(
    ("raw", "expected", "repaired", "unresolved"),
    [
        (["D8:6; D9:17"], ["D8:6", "D9:17"], 1, 0),
        (["D9:1 D4:4 D4:6"], ["D9:1", "D4:4", "D4:6"], 1, 0),
        (["D:11:26"], ["D11:26"], 1, 0),
        (["D30:05"], ["D30:5"], 1, 0),
        (["D1:3,D1:4"], ["D1:3", "D1:4"], 1, 0),
        (["D"], [], 0, 1),
        (["D10:19"], [], 0, 1),  # well formed, but no such turn
        (["D1:3", "D1:3"], ["D1:3"], 0, 0),  # duplicates collapse
    ],
)
def test_malformed_evidence(raw: list[str], expected: list[str], repaired: int, unresolved: int) -> None:
    turn_ids = {"D8:6", "D9:17", "D9:1", "D4:4", "D4:6", "D11:26", "D30:5", "D1:3", "D1:4"}
    stats = EvidenceStats()
    assert resolve_evidence(raw, turn_ids, "q", stats) == expected
    assert (stats.total, stats.repaired, len(stats.unresolved)) == (len(raw), repaired, unresolved)


def test_locomo_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sample_id": "x"}))
    with pytest.raises(DatasetFormatError, match="top level is dict; expected the official LoCoMo"):
        load_locomo(bad)
    data = tiny_locomo()
    data[0]["conversation"]["session_1_date_time"] = "yesterday"
    bad.write_text(json.dumps(data))
    with pytest.raises(DatasetFormatError, match="unparseable LoCoMo session date 'yesterday'"):
        load_locomo(bad)
    with pytest.raises(DatasetFormatError, match="no such file"):
        load_locomo(tmp_path / "missing.json")


def test_select_conversations(tmp_path: Path) -> None:
    ds = load_locomo(write_tiny_locomo(tmp_path))
    assert ds.select(["conv-t1"]).conversations == ds.conversations
    with pytest.raises(DatasetFormatError, match="unknown conversation id"):
        ds.select(["conv-99"])


def test_longmemeval_fixture() -> None:
    ds = load_longmemeval(FIXTURE)
    assert ds.name == "longmemeval"
    assert [c.id for c in ds.conversations] == ["e47becba", "gpt4_2655b836", "0a995998_abs"]
    first = ds.conversations[0]
    q = first.questions[0]
    assert q.category == "single-session-user" and q.headline and not q.abstention
    assert q.question_date == datetime(2023, 5, 30, 23, 40, tzinfo=UTC)
    assert q.evidence == ("answer_280352e9:1",) and q.evidence_sessions == ("answer_280352e9",)
    assert first.turns[2].content.startswith("user: I graduated with a degree in Business Administration")
    assert first.turns[3].speaker == "assistant"
    # haystack given out of order (as in the oracle split) is sorted by date
    temporal = ds.conversations[1]
    assert [s.id for s in temporal.sessions] == ["answer_4be1b6b4_1", "sharegpt_abc_3", "answer_4be1b6b4_2"]
    assert temporal.questions[0].evidence == ("answer_4be1b6b4_1:1", "answer_4be1b6b4_2:1")
    abs_q = ds.conversations[2].questions[0]
    assert abs_q.abstention and not abs_q.headline and abs_q.category == "multi-session"


def _fixture_items() -> list[dict[str, Any]]:
    return list(json.loads(FIXTURE.read_text()))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda items: {"data": items},
            r"top level is dict, not a non-empty list; expected an official LongMemEval",
        ),
        (lambda items: [], r"top level is list, not a non-empty list"),
        (
            lambda items: [{k: v for k, v in items[0].items() if k != "haystack_dates"}],
            r"item 0: missing field 'haystack_dates'",
        ),
        (
            lambda items: [{**items[0], "haystack_dates": items[0]["haystack_dates"][:1]}],
            r"item 0 \(e47becba\): haystack_session_ids \(2\), haystack_dates \(1\) and "
            r"haystack_sessions \(2\)",
        ),
        (lambda items: [{**items[0], "question_type": "trivia"}], r"unknown question_type 'trivia'"),
        (
            lambda items: [{**items[0], "question_date": "30 May 2023"}],
            r"unparseable LongMemEval date '30 May 2023'",
        ),
        (
            lambda items: [{**items[0], "haystack_sessions": [[{"role": "bot", "content": "x"}], []]}],
            r"session 'sharegpt_yywfIrx_0' turn 1 must be",
        ),
        (lambda items: [items[0], items[0]], r"item 1: duplicate question_id 'e47becba'"),
        (
            lambda items: [{**items[0], "answer_session_ids": "answer_280352e9"}],
            r"field 'answer_session_ids' has type str",
        ),
        # the re-shaped copies found online (plural lists, input/expected) are refused, not half-read
        (
            lambda items: [{"input": {"history": []}, "expected": {"answer": "x"}}],
            r"missing field 'question_id'",
        ),
    ],
)
def test_longmemeval_malformed(tmp_path: Path, mutate: Any, message: str) -> None:
    path = tmp_path / "lme.json"
    path.write_text(json.dumps(mutate(_fixture_items())))
    with pytest.raises(DatasetFormatError, match=message):
        load_longmemeval(path)


def test_longmemeval_jsonl_refused(tmp_path: Path) -> None:
    lines = "\n".join(json.dumps(i) for i in _fixture_items())
    path = tmp_path / "lme.json"
    path.write_text(lines)
    with pytest.raises(DatasetFormatError, match=r"not a single JSON document .*expected an official LongMemEval"):
        load_longmemeval(path)
    jsonl = tmp_path / "longmemeval_oracle.jsonl"
    jsonl.write_text(lines)
    with pytest.raises(DatasetFormatError, match="JSON Lines is a re-shaped copy"):
        load_longmemeval(jsonl)
