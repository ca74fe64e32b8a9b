"""``memcubed-eval tune``: per-channel ranks collected through the API reproduce the service's fusion offline, and
the fold search reports out-of-sample recall beside the in-sample figure (on hand-made ranks and the tiny
LoCoMo-format conversation; never the real data)."""

from __future__ import annotations

import json
import typing
import uuid
from pathlib import Path
from typing import Any

import memcubed
import numpy as np
from typer.testing import CliRunner

from app.retrieval.fine import CHANNEL_WEIGHTS
from app.retrieval.fine import RRF_K as SERVICE_RRF_K
from app.schemas.memories import Channel, SearchRequest
from benchmarks.render import table_markdown
from benchmarks.render import tables as render_tables
from evals.cli import eval_app
from evals.runner import ServiceTarget
from evals.tuning import (
    CHANNELS,
    DEPTH,
    RRF_K,
    ascend,
    collect,
    cross_validate,
    folds,
    load_ranks,
    results_file,
    weights_of,
)
from tests.evals.tiny import write_tiny_locomo


def test_the_client_side_constants_are_the_services() -> None:
    assert typing.get_args(Channel) == CHANNELS
    assert RRF_K == SERVICE_RRF_K
    le = next(m.le for m in SearchRequest.model_fields["top_k"].metadata if hasattr(m, "le"))
    assert le == DEPTH


def _question(conv: str, n: int, right: str) -> dict[str, Any]:
    """Gold and decoy tie under equal weights (the decoy first, as the service would have listed it); the gold turn
    is first in ``right``'s channel and second in the other."""
    other = "dense" if right == "bm25_window" else "bm25_window"
    return {"conversation": conv, "question": f"{conv}-q{n}", "category": 4, "evidence": [f"{conv}:gold{n}"],
            "candidates": [{"id": f"{conv}:decoy{n}", "ranks": {other: 1, right: 2}, "fused": None},
                           {"id": f"{conv}:gold{n}", "ranks": {right: 1, other: 2}, "fused": None}]}


def _write(path: Path, kinds: dict[str, str], per_conv: int = 3) -> Path:
    path.write_text("".join(json.dumps(_question(c, n, kind)) + "\n" for c, kind in kinds.items()
                            for n in range(per_conv)))
    return path


def test_ascent_finds_the_channel_that_ranks_the_evidence_first(tmp_path: Path) -> None:
    questions = load_ranks(_write(tmp_path / "r.jsonl", {"c1": "bm25_window", "c2": "bm25_window"}))
    ones = np.ones(len(CHANNELS))
    assert questions[0].ranked(ones)[0] == "c1:decoy0"  # a tie keeps the service's order
    tuned = ascend(questions, ones, k=1)
    # the first strictly better move: dense to 0 (the grid starts at 0); nothing improves on recall 1 after it
    assert dict(zip(CHANNELS, tuned.tolist())) == {c: 0.0 if c == "dense" else 1.0 for c in CHANNELS}
    cv = cross_validate(questions, ones, repeats=3, k=1)
    assert len(cv["folds"]) == 6
    assert [(f["in_sample"], f["out_of_sample"], f["start_out_of_sample"]) for f in cv["folds"]] == [(1, 1, 0)] * 6
    assert cv["agreed"]["dense"] == 0.0 and cv["agreed"]["bm25_window"] == 1.0
    assert (cv["start_recall"], cv["out_of_sample"], cv["tuned_on_all_in_sample"]) == (0.0, 1.0, 1.0)
    report = results_file(cv, "memcubed-eval tune --ranks r.jsonl")
    assert report["command"] == "memcubed-eval tune --ranks r.jsonl" and report["commit"] and report["load"]
    assert render_tables("tune-fusion", report)["collected"]["rows"] == [[6, 2, 6, 0.0]]
    assert "| **tuned per fold** | 1.000 | **the other half (out-of-sample, mean)** |" in "\n".join(
        table_markdown(t) for t in report["tables"].values())


def test_folds_report_on_conversations_the_weights_never_saw(tmp_path: Path) -> None:
    kinds = {"c1": "bm25_window", "c2": "bm25_window", "c3": "dense", "c4": "dense", "c5": "bm25_window"}
    splits = folds(list(kinds), repeats=5)
    assert len(splits) == 10
    for train, test in splits:
        assert not set(train) & set(test) and set(train) | set(test) == set(kinds)
    assert all(sum(c in test for _, test in splits) == 5 for c in kinds)  # each reported on once per repeat
    cv = cross_validate(load_ranks(_write(tmp_path / "r.jsonl", kinds)), np.ones(len(CHANNELS)), k=1)
    for fold in cv["folds"]:
        w = fold["weights"]
        # an oracle apart from the code: a question is right iff the tuned weights favour its channel
        expected = np.mean([float(w[kinds[c]] > w["dense" if kinds[c] == "bm25_window" else "bm25_window"])
                            for c in fold["reported_on"]])
        assert fold["out_of_sample"] == expected
    assert cv["out_of_sample"] < cv["in_sample_folds"]  # the halves disagree, so tuning overfits its half


def test_weights_of() -> None:
    assert weights_of("dense=2, bm25_window=0.5").tolist() == [2.0, 0, 0, 0.5, 0, 0, 0, 0, 0, 0]
    assert weights_of(None).tolist() == [1.0] * len(CHANNELS)
    try:
        weights_of("graph=1")
    except ValueError as exc:
        assert "unknown channel 'graph'" in str(exc)
    else:
        raise AssertionError("an unknown channel must be refused")


def test_collected_ranks_reproduce_the_services_fusion(live_server: Any, tmp_path: Path) -> None:
    with memcubed.Client(live_server.url, live_server.admin_key) as admin:
        key = admin.tenants.create(f"tune-{uuid.uuid4().hex[:8]}").api_key
    path = collect(write_tiny_locomo(tmp_path), ServiceTarget(live_server.url, key), None, tmp_path / "ranks.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    # the headline questions with resolvable evidence: q0 (cat 4), q1 (cat 2), q2 (cat 1), q4 (cat 3)
    assert [r["category"] for r in rows] == [4, 2, 1, 3]
    assert all(len(r["candidates"]) == 6 for r in rows)  # every turn of the tiny conversation is a candidate
    # The service weights a channel asked for explicitly even when its default is 0 (plain BM25) at 1.
    service = np.array([CHANNEL_WEIGHTS[c] or 1.0 for c in CHANNELS])
    for row, question in zip(rows, load_ranks(path), strict=True):
        offline = question.rrf @ service
        assert np.allclose(offline, [c["fused"] for c in row["candidates"]], atol=1e-6)
        # (the service's hit order is the fusion's reordered for agents, app.memory.ranking: not compared)
    result = CliRunner().invoke(eval_app, ["tune", "--ranks", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "at least two conversations" in result.output


def test_the_command_tunes_offline_from_cached_ranks(tmp_path: Path) -> None:
    ranks = _write(tmp_path / "r.jsonl", {"c1": "bm25_window", "c2": "bm25_window", "c3": "bm25_window"})
    result = CliRunner().invoke(eval_app, ["tune", "--ranks", str(ranks), "--repeats", "2", "--k", "1",
                                           "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "R@1 out-of-sample (mean of 4 folds): 1.000; in-sample 1.000" in result.output
    saved = json.loads((tmp_path / "out" / "tune-fusion.json").read_text())
    assert saved["command"].startswith("memcubed-eval ") and saved["agreed"]["dense"] == 0.0
    assert [r[2:4] for r in saved["tables"]["folds"]["rows"]] == [[1.0, 1.0]] * 4
    result = CliRunner().invoke(eval_app, ["tune", "--ranks", str(ranks), "--start", "graph=1"])
    assert result.exit_code == 2 and "unknown channel 'graph'" in result.output
