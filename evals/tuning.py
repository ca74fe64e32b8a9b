"""Cross-validated tuning of fine mode's fusion weights by conversation folds (issue 19).

Two steps, so that the search over weights never calls the service again:

1. ``collect``: each conversation is ingested once, and each headline question searched once in fine mode with
   every channel, no graph expansion, ``explain: true`` and the API's largest ``top_k``: each hit's rank in every
   channel it came from goes to ``channel-ranks.jsonl`` (one line per question).
2. ``cross_validate``: fine mode's weighted reciprocal rank fusion (a hit scores Σ w_c / (RRF_K + rank_c)) is
   recomputed offline from those ranks for any weights; coordinate ascent over a grid picks the weights on one half
   of the conversations and recall@k is reported on the other half, then the halves swap, for several seeded
   splits (5 x 2 by default). The out-of-sample mean is the honest figure; the in-sample one stands beside it; the
   weights the folds agree on (per channel, the median of the folds' choices) are the candidate defaults.

Limits: the ranks are those of the hits the service returned (``top_k`` at most 200, ordered by the shipped
weights), so a candidate below 200 under the shipped weights is absent for every other weight vector too; the
fraction of questions where that cut was reached is reported. Graph expansion and the per-type slots are not tuned
(graph is off while collecting; LoCoMo's memories are all one type, so the slots never fire on it).
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import memcubed
import numpy as np
from rich.console import Console
from rich.progress import Progress

from evals.datasets import load_locomo
from evals.metrics import recall_at_k
from evals.runner import MemcubedSystem, ServiceTarget, provenance

# The channels of ``POST /v1/search`` (``channels``) and fine mode's rank constant, as the service defines them
# (app/retrieval/fine.py; tests/evals/test_eval_tuning.py checks they agree: evals imports nothing from app).
CHANNELS = ("dense", "dense_window", "bm25", "bm25_window", "bm25_window2", "splade", "splade_window",
            "splade_window2", "time", "typed")
RRF_K = 60
DEPTH = 200  # the API's largest top_k
GRID = (0.0, 0.5, 1.0, 2.0, 3.0)
HEADLINE = (1, 2, 3, 4)


@dataclass(frozen=True)
class RankedQuestion:
    """One question's candidates as fine mode saw them: ``rrf[i, c]`` is 1 / (RRF_K + rank) of candidate i in
    channel c, 0 where the channel did not return it."""

    conversation: str
    question: str
    category: int
    evidence: tuple[str, ...]
    ids: tuple[str, ...]
    rrf: np.ndarray
    truncated: bool

    def ranked(self, weights: np.ndarray) -> list[str]:
        """The candidates in fused order under ``weights`` (ties keep the service's order)."""
        order = np.argsort(-(self.rrf @ weights), kind="stable")
        return [self.ids[i] for i in order]


def collect(dataset: Path, target: ServiceTarget, conversations: Sequence[str] | None, out: Path,
            console: Console | None = None) -> Path:
    """Ingest, search every headline question once with every channel and explain, write the ranks (JSONL)."""
    console = console or Console()
    data = load_locomo(dataset).select(conversations)
    out.parent.mkdir(parents=True, exist_ok=True)
    with memcubed.Client(target.url, target.api_key, timeout=120) as client, out.open("w") as fh, \
            Progress(console=console) as bar:
        task = bar.add_task("tune: conversations", total=len(data.conversations))
        for conv in data.conversations:
            system = MemcubedSystem(client, "fine", 500, keep_cubes=False)
            system.ingest("locomo", conv, lambda _n: None)
            assert system.cube_id is not None
            for q in conv.questions:
                if q.category_code not in HEADLINE or not q.evidence:
                    continue
                resp = client.search(q.question, [system.cube_id], top_k=DEPTH, mode="fine", explain=True,
                                     channels=list(CHANNELS), graph=False)
                candidates = []
                for hit in resp.results:
                    dia = (hit.memory.metadata or {}).get("dia_id")
                    explain = hit.explain or {}
                    candidates.append({"id": str(dia) if dia else f"memory:{hit.memory.id}",
                                       "ranks": {c: v["rank"] for c, v in explain.get("channels", {}).items()},
                                       "fused": explain.get("fused")})
                fh.write(json.dumps({"conversation": conv.id, "question": q.id, "category": q.category_code,
                                     "evidence": list(q.evidence), "candidates": candidates}) + "\n")
            system.cleanup()
            bar.advance(task)
    return out


def load_ranks(path: Path) -> list[RankedQuestion]:
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        cands = row["candidates"]
        rrf = np.zeros((len(cands), len(CHANNELS)))
        for i, cand in enumerate(cands):
            for channel, rank in cand["ranks"].items():
                rrf[i, CHANNELS.index(channel)] = 1.0 / (RRF_K + rank)
        out.append(RankedQuestion(row["conversation"], row["question"], int(row["category"]),
                                  tuple(row["evidence"]), tuple(c["id"] for c in cands), rrf,
                                  truncated=len(cands) >= DEPTH))
    return out


def mean_recall(questions: Iterable[RankedQuestion], weights: np.ndarray, k: int = 10) -> float:
    values = [r for q in questions if (r := recall_at_k(q.ranked(weights), set(q.evidence), k)) is not None]
    return statistics.fmean(values) if values else 0.0


def ascend(questions: Sequence[RankedQuestion], start: np.ndarray, grid: Sequence[float] = GRID, k: int = 10,
           rounds: int = 4) -> np.ndarray:
    """Coordinate ascent: each channel in turn takes the grid value with the best mean recall@k, the others held;
    a value replaces the current one only when strictly better, so the result is deterministic."""
    weights = start.astype(float).copy()
    best = mean_recall(questions, weights, k)
    for _ in range(rounds):
        changed = False
        for c in range(len(CHANNELS)):
            for value in grid:
                if value == weights[c]:
                    continue
                trial = weights.copy()
                trial[c] = value
                if not trial.any():
                    continue
                score = mean_recall(questions, trial, k)
                if score > best + 1e-12:
                    best, weights, changed = score, trial, True
        if not changed:
            break
    return weights


def folds(conversations: Sequence[str], repeats: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """``repeats`` seeded splits of the conversations into two halves, each used once to tune and once to report."""
    out = []
    for r in range(repeats):
        ids = sorted(conversations)
        random.Random(seed + r).shuffle(ids)
        half = len(ids) // 2
        a, b = sorted(ids[:half]), sorted(ids[half:])
        out += [(a, b), (b, a)]
    return out


def weights_of(spec: str | None) -> np.ndarray:
    """``"dense=1,bm25_window=2"`` → a weight vector (unnamed channels 0); None → every channel 1."""
    if not spec:
        return np.ones(len(CHANNELS))
    weights = np.zeros(len(CHANNELS))
    for part in spec.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in CHANNELS:
            raise ValueError(f"unknown channel {name.strip()!r}; channels: {', '.join(CHANNELS)}")
        weights[CHANNELS.index(name.strip())] = float(value)
    return weights


def cross_validate(questions: Sequence[RankedQuestion], start: np.ndarray, repeats: int = 5,
                   grid: Sequence[float] = GRID, k: int = 10, seed: int = 0) -> dict[str, Any]:
    """Tune on one half of the conversations, report on the other, for every fold; and the figures beside them."""
    by_conv: dict[str, list[RankedQuestion]] = {}
    for q in questions:
        by_conv.setdefault(q.conversation, []).append(q)
    if len(by_conv) < 2:
        raise ValueError("cross-validation needs at least two conversations")
    rows: list[dict[str, Any]] = []
    chosen = []
    for n, (train, test) in enumerate(folds(list(by_conv), repeats, seed), start=1):
        tr = [q for c in train for q in by_conv[c]]
        te = [q for c in test for q in by_conv[c]]
        w = ascend(tr, start, grid, k)
        chosen.append(w)
        rows.append({"fold": n, "tuned_on": train, "reported_on": test, "weights": dict(zip(CHANNELS, w.tolist())),
                     "in_sample": mean_recall(tr, w, k), "out_of_sample": mean_recall(te, w, k),
                     "start_out_of_sample": mean_recall(te, start, k)})
    agreed = np.median(np.stack(chosen), axis=0)
    everything = ascend(questions, start, grid, k)
    return {
        "k": k, "grid": list(grid), "repeats": repeats, "seed": seed, "questions": len(questions),
        "conversations": sorted(by_conv), "truncated_share": statistics.fmean(q.truncated for q in questions),
        "start": dict(zip(CHANNELS, start.tolist())), "folds": rows,
        "out_of_sample": statistics.fmean(r["out_of_sample"] for r in rows),
        "in_sample_folds": statistics.fmean(r["in_sample"] for r in rows),
        "start_recall": mean_recall(questions, start, k),
        "tuned_on_all": dict(zip(CHANNELS, everything.tolist())),
        "tuned_on_all_in_sample": mean_recall(questions, everything, k),
        "agreed": dict(zip(CHANNELS, agreed.tolist())),
        "agreed_in_sample": mean_recall(questions, agreed, k),
    }


def results_file(cv: dict[str, Any], command: str) -> dict[str, Any]:
    """The cross-validation as a results file for ``benchmarks/render.py`` (provenance and tables)."""
    k = cv["k"]
    summary = {"columns": ["weights", f"R@{k}", "measured on"], "formats": [None, "{:.3f}", None], "rows": [
        ["start", cv["start_recall"], "all conversations"],
        ["tuned per fold", cv["in_sample_folds"], "the fold's own half (in-sample, mean)"],
        ["**tuned per fold**", cv["out_of_sample"], "**the other half (out-of-sample, mean)**"],
        ["agreed (median of the folds)", cv["agreed_in_sample"], "all conversations (in-sample)"],
        ["tuned on all", cv["tuned_on_all_in_sample"], "all conversations (in-sample)"]]}
    weights = {"columns": ["channel", "start", "agreed", "tuned on all"], "formats": [None, "{:g}", "{:g}", "{:g}"],
               "rows": [[c, cv["start"][c], cv["agreed"][c], cv["tuned_on_all"][c]] for c in CHANNELS]}
    fold_rows = {"columns": ["fold", "tuned on", f"R@{k} in-sample", f"R@{k} out-of-sample", "start, out-of-sample"],
                 "formats": [None, None, "{:.3f}", "{:.3f}", "{:.3f}"],
                 "rows": [[r["fold"], ", ".join(r["tuned_on"]), r["in_sample"], r["out_of_sample"],
                           r["start_out_of_sample"]] for r in cv["folds"]]}
    collected = {"columns": ["questions", "conversations", "folds", "share of questions cut at top_k 200"],
                 "formats": ["{:,}", "{:,}", "{:,}", "{:.3f}"],
                 "rows": [[cv["questions"], len(cv["conversations"]), len(cv["folds"]), cv["truncated_share"]]]}
    return {**provenance(command), **cv,
            "tables": {"collected": collected, "summary": summary, "weights": weights, "folds": fold_rows}}
