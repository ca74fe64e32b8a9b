"""Metrics on crafted rankings, against values computed by hand."""

from __future__ import annotations

import math

import pytest

from evals.metrics import (
    aggregate,
    bleu1,
    context_recall,
    evidence_ranks,
    latency_summary,
    ndcg_at_k,
    recall_at_k,
    recall_curve,
    reciprocal_rank,
    retrieval_scores,
    session_recall_at_k,
    token_f1,
)

# Gold D1:1 and D2:3 sit at ranks 2 and 5.
RANKED = ["D2:2", "D1:1", "D2:1", "D1:3", "D2:3", "D1:2"]
GOLD = ["D1:1", "D2:3"]
SESSIONS = {"D1:1": "s1", "D1:2": "s1", "D1:3": "s1", "D2:1": "s2", "D2:2": "s2", "D2:3": "s2"}


def test_ranks_recall_mrr() -> None:
    assert evidence_ranks(RANKED, GOLD) == {"D1:1": 2, "D2:3": 5}
    assert evidence_ranks(RANKED, ["D9:9"]) == {"D9:9": None}
    assert recall_at_k(RANKED, GOLD, 1) == 0.0
    assert recall_at_k(RANKED, GOLD, 2) == 0.5
    assert recall_at_k(RANKED, GOLD, 4) == 0.5
    assert recall_at_k(RANKED, GOLD, 5) == 1.0
    assert recall_at_k(RANKED, GOLD, 20) == 1.0
    assert reciprocal_rank(RANKED, GOLD) == 0.5
    assert reciprocal_rank(["D2:2"], GOLD) == 0.0
    # undefined without gold evidence
    assert recall_at_k(RANKED, [], 5) is None
    assert reciprocal_rank(RANKED, []) is None
    assert ndcg_at_k(RANKED, []) is None


def test_ndcg_by_hand() -> None:
    # DCG = 1/log2(2+1) + 1/log2(5+1) = 0.630930 + 0.386853 = 1.017783
    # IDCG (two relevant at ranks 1, 2) = 1 + 1/log2(3) = 1.630930
    assert ndcg_at_k(RANKED, GOLD, 10) == pytest.approx(0.6240505, abs=1e-6)
    assert ndcg_at_k(RANKED, GOLD, 10) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3)), abs=1e-12
    )
    assert ndcg_at_k(["D1:1", "D2:3"], GOLD, 10) == 1.0
    # a cut at k=4 drops the rank-5 hit: 0.630930 / 1.630930
    assert ndcg_at_k(RANKED, GOLD, 4) == pytest.approx(0.3868528, abs=1e-6)


def test_session_recall() -> None:
    gold_sessions = ["s1", "s2"]
    assert session_recall_at_k(RANKED, gold_sessions, SESSIONS, 1) == 0.5  # D2:2 -> s2
    assert session_recall_at_k(RANKED, gold_sessions, SESSIONS, 2) == 1.0  # + D1:1 -> s1
    assert session_recall_at_k(RANKED, ["s1"], SESSIONS, 1) == 0.0
    assert session_recall_at_k(RANKED, [], SESSIONS, 1) is None


def test_retrieval_scores_bundle() -> None:
    scores = retrieval_scores(RANKED, GOLD, ["s1", "s2"], SESSIONS)
    assert scores == {
        "recall@1": 0.0,
        "recall@5": 1.0,
        "recall@10": 1.0,
        "recall@20": 1.0,
        "session_recall@1": 0.5,
        "session_recall@5": 1.0,
        "session_recall@10": 1.0,
        "session_recall@20": 1.0,
        "ndcg@10": pytest.approx(0.6240505, abs=1e-6),
        "mrr": 0.5,
    }
    assert context_recall(RANKED[:3], GOLD) == 0.5


def test_aggregate_skips_undefined() -> None:
    rows: list[dict[str, float | None]] = [
        {"recall@5": 1.0, "mrr": 0.5},
        {"recall@5": 0.0, "mrr": None},
        {"recall@5": 0.5, "mrr": 1.0},
    ]
    assert aggregate(rows, ["recall@5", "mrr"]) == {
        "recall@5": {"mean": 0.5, "n": 3},
        "mrr": {"mean": 0.75, "n": 2},
    }
    assert aggregate([{"mrr": None}], ["mrr"]) == {"mrr": {"mean": None, "n": 0}}


def test_recall_curve_from_ranks() -> None:
    ranks: list[dict[str, int | None]] = [
        {"a": 1, "b": 3},
        {"c": None},
        {},
    ]  # the empty one (no evidence) is skipped
    assert recall_curve(ranks, 4) == [0.25, 0.25, 0.5, 0.5]


def test_answer_f1_and_bleu1() -> None:
    assert token_f1("Rex", "Rex") == 1.0
    assert token_f1("In June 2023", "June 2023") == pytest.approx(0.8)  # P 2/3, R 1
    assert token_f1("The golden retriever.", "a Golden Retriever") == 1.0  # articles and punctuation
    assert token_f1("cat", "dog") == 0.0
    assert bleu1("In June 2023", "June 2023") == pytest.approx(2 / 3)  # BP 1 (longer than ref)
    assert bleu1("June", "June 2023") == pytest.approx(math.exp(1 - 2 / 1))  # precision 1, BP e^-1
    assert bleu1("", "June") == 0.0
    assert bleu1("cat", "dog") == 0.0


def test_latency_percentiles() -> None:
    s = latency_summary([10.0, 20.0, 30.0, 40.0, 50.0])
    assert s == {"n": 5, "p50": 30.0, "p95": 48.0, "p99": pytest.approx(49.6), "mean": 30.0, "max": 50.0}
    assert latency_summary([])["p50"] is None
