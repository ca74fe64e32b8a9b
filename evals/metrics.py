"""Retrieval, answer and cost metrics; pure functions so the tests can pin exact values.

Retrieval metrics need no LLM and are always computed: for every question, the 1-based ranks of
its gold evidence turns in a system's ranked list, and from them recall@k (turn and session level),
NDCG@10 and MRR. A metric is ``None`` when it is undefined for a question (no gold evidence); the
aggregates average only defined values and report how many there were.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

K_VALUES: tuple[int, ...] = (1, 5, 10, 20)
NDCG_K = 10


def evidence_ranks(ranked: Sequence[str], gold: Iterable[str]) -> dict[str, int | None]:
    """1-based rank of each gold id in ``ranked`` (``None`` when not retrieved)."""
    pos: dict[str, int] = {}
    for i, doc in enumerate(ranked, start=1):
        pos.setdefault(doc, i)
    return {g: pos.get(g) for g in gold}


def recall_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float | None:
    """Fraction of gold ids found in the top ``k``."""
    if not gold:
        return None
    top = set(ranked[:k])
    return sum(1 for g in gold if g in top) / len(gold)


def ndcg_at_k(ranked: Sequence[str], gold: Collection[str], k: int = NDCG_K) -> float | None:
    """Binary-relevance NDCG: DCG of the top ``k`` over the DCG of an ideal ranking."""
    if not gold:
        return None
    gold_set = set(gold)
    seen: set[str] = set()
    dcg = 0.0
    for i, doc in enumerate(ranked[:k], start=1):
        if doc in gold_set and doc not in seen:
            dcg += 1.0 / math.log2(i + 1)
        seen.add(doc)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(gold_set), k) + 1))
    return dcg / ideal


def reciprocal_rank(ranked: Sequence[str], gold: Collection[str]) -> float | None:
    """1 / rank of the first gold id in the list (0 when none is retrieved)."""
    if not gold:
        return None
    gold_set = set(gold)
    for i, doc in enumerate(ranked, start=1):
        if doc in gold_set:
            return 1.0 / i
    return 0.0


def session_recall_at_k(
    ranked: Sequence[str], gold_sessions: Collection[str], turn_to_session: Mapping[str, str], k: int
) -> float | None:
    """Fraction of gold sessions touched by the top ``k`` turns (the turns an answerer would see)."""
    if not gold_sessions:
        return None
    seen = {turn_to_session[d] for d in ranked[:k] if d in turn_to_session}
    return sum(1 for s in gold_sessions if s in seen) / len(gold_sessions)


def retrieval_scores(
    ranked: Sequence[str],
    gold: Collection[str],
    gold_sessions: Collection[str],
    turn_to_session: Mapping[str, str],
    ks: Sequence[int] = K_VALUES,
) -> dict[str, float | None]:
    """All retrieval metrics of one question for one system."""
    out: dict[str, float | None] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(ranked, gold, k)
    for k in ks:
        out[f"session_recall@{k}"] = session_recall_at_k(ranked, gold_sessions, turn_to_session, k)
    out[f"ndcg@{NDCG_K}"] = ndcg_at_k(ranked, gold, NDCG_K)
    out["mrr"] = reciprocal_rank(ranked, gold)
    return out


def context_recall(context_ids: Collection[str], gold: Collection[str]) -> float | None:
    """Fraction of gold turns present in the context handed to the answerer (whatever its size)."""
    if not gold:
        return None
    ctx = set(context_ids)
    return sum(1 for g in gold if g in ctx) / len(gold)


# --------------------------------------------------------------------------------------------------
# Aggregation


def mean_defined(values: Iterable[float | None]) -> tuple[float | None, int]:
    """Mean over defined values and how many there were."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, 0
    return float(sum(vals) / len(vals)), len(vals)


def aggregate(rows: Sequence[Mapping[str, float | None]], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per metric: mean over the rows where it is defined, with its count."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        mean, n = mean_defined(r.get(name) for r in rows)
        out[name] = {"mean": mean, "n": n}
    return out


def recall_curve(rank_lists: Sequence[Mapping[str, int | None]], max_k: int) -> list[float]:
    """Mean turn recall@k for k = 1..max_k, from stored evidence ranks (for the recall plot)."""
    usable = [r for r in rank_lists if r]
    if not usable:
        return [0.0] * max_k
    curve = []
    for k in range(1, max_k + 1):
        per_q = [sum(1 for v in r.values() if v is not None and v <= k) / len(r) for r in usable]
        curve.append(float(np.mean(per_q)))
    return curve


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/mean/max with linear interpolation (numpy's default)."""
    if not latencies_ms:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    arr = np.asarray(latencies_ms, dtype=float)
    return {
        "n": len(arr),
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
        "mean": float(arr.mean()),
        "max": float(arr.max()),
    }


# --------------------------------------------------------------------------------------------------
# Answer metrics (lexical; the LLM judge is in evals.llm)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> list[str]:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, split on whitespace."""
    text = str(text).lower().translate(_PUNCT)
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1 (multiset overlap of normalised tokens)."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if not pred or not ref:
        return float(pred == ref)
    common = Counter(pred) & Counter(ref)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def bleu1(prediction: str, gold: str) -> float:
    """Sentence BLEU-1: clipped unigram precision times the brevity penalty, no smoothing.

    Tokens are lower-cased word characters, as the Mem0/MemOS scripts' word tokeniser gives for
    short answers; an empty prediction or no overlap scores 0.
    """
    pred = re.findall(r"\w+", str(prediction).lower())
    ref = re.findall(r"\w+", str(gold).lower())
    if not pred or not ref:
        return 0.0
    clipped = sum((Counter(pred) & Counter(ref)).values())
    if clipped == 0:
        return 0.0
    precision = clipped / len(pred)
    bp = 1.0 if len(pred) > len(ref) else math.exp(1 - len(ref) / len(pred))
    return bp * precision
