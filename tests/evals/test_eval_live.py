"""End to end: the runner against the live server (uvicorn, real Postgres, real embedder), through the SDK."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import memcubed

from evals.report import summarize, write_report
from evals.runner import MEMCUBED, RunConfig, ServiceTarget, run
from tests.evals.tiny import write_tiny_locomo

ALL = ["D1:1", "D1:2", "D1:3", "D2:1", "D2:2", "D2:3"]


def test_run_against_live_server(live_server: Any, tmp_path: Path) -> None:
    with memcubed.Client(live_server.url, live_server.admin_key) as admin:
        key = admin.tenants.create(f"eval-{uuid.uuid4().hex[:8]}").api_key
    data = write_tiny_locomo(tmp_path)
    config = RunConfig("locomo", data, tmp_path / "out", top_k=2, baselines=["bm25"], batch_size=4, show_progress=False)
    result = run(config, ServiceTarget(live_server.url, key))

    assert result.systems == [MEMCUBED, "bm25"]
    (conv,) = result.conversations
    ingest = conv["ingest"][MEMCUBED]
    assert (ingest["memories"], ingest["batches"]) == (6, 2)  # 6 turns in batches of 4
    assert ingest["seconds"] > 0
    assert ingest["enrichment_pending_at_search"] in (0, None)  # searched only after background work was done
    for rec in result.records:
        mine = rec["systems"][MEMCUBED]
        assert sorted(mine["ranked"]) == ALL  # every hit mapped back to a dia_id, each turn once
        assert mine["unmapped"] == 0
        assert mine["latency_ms"] > 0 and mine["server_ms"] is not None
        assert mine["context_size"] == 2
    by_id = {r["question_id"]: r["systems"][MEMCUBED] for r in result.records}
    assert by_id["conv-t1/q1"]["ranked"][0] == "D2:1"  # "When did Bob start learning the violin?"
    assert by_id["conv-t1/q1"]["ranks"] == {"D2:1": 1}

    with memcubed.Client(live_server.url, key) as client:
        assert client.cubes.list() == []  # the evaluation cube was deleted afterwards

    summary = summarize(result)
    assert summary["groups"]["headline"]["systems"][MEMCUBED]["recall@10"] == {"mean": 1.0, "n": 4}
    md = write_report(result, tmp_path / "out")["report"].read_text()
    assert "| **memcubed** |" in md and "memcubed turn recall@10 on the headline questions: **1.000**" in md
