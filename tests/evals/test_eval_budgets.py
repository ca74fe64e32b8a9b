"""``memcubed-eval locomo --budgets``: every tier combination logged, the router trained on one conversation
and evaluated live on the other, table + frontier plot written; on the tiny LoCoMo-format file."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import memcubed
import pytest
from typer.testing import CliRunner

from evals.budgets import LAMBDA_SWEEP
from evals.cli import eval_app
from tests.conftest import Databases, pg_sqlalchemy_url
from tests.evals.tiny import tiny_locomo


@pytest.fixture
def server_router(live_server: Any) -> Iterator[Path]:
    """The shared server's data dir; the policy trained here is removed afterwards so other tests keep the rules."""
    data_dir = Path(live_server.settings.data_dir)
    yield data_dir
    shutil.rmtree(data_dir / "router", ignore_errors=True)


def two_conversations(directory: Path) -> Path:
    first = tiny_locomo()[0]
    second = json.loads(json.dumps(first)) | {"sample_id": "conv-t2"}
    path = directory / "locomo_two.json"
    path.write_text(json.dumps([first, second]), encoding="utf-8")
    return path


def test_budgets_command_writes_log_policy_table_and_plot(live_server: Any, server_router: Path,
                                                          tmp_path: Path) -> None:
    with memcubed.Client(live_server.url, live_server.admin_key) as admin:
        key = admin.tenants.create(f"bud-{uuid.uuid4().hex[:8]}").api_key
    out = tmp_path / "out"
    result = CliRunner().invoke(eval_app, [
        "locomo", "--dataset", str(two_conversations(tmp_path)), "--url", live_server.url, "--api-key", key,
        "--budgets", "low,mid,high,auto", "--train-conversations", "conv-t1", "--data-dir", str(server_router),
        "--out", str(out), "--top-k", "2",
    ], env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)

    log = [json.loads(line) for line in (out / "routing-log.jsonl").read_text().splitlines()]
    # 4 headline questions with resolvable evidence per conversation x 9 tier combinations x 2 conversations
    assert len(log) == 72
    assert {(r["tiers"]["retrieval"], r["tiers"]["context"]) for r in log} == {
        (a, b) for a in ("low", "mid", "high") for b in ("low", "mid", "high")}
    # six turns fit the context budget: the service returns all of them, whatever the tiers, unless the question
    # is below the abstention floor
    assert all(r["full_context"] != r["abstained"] for r in log)
    assert sum(r["full_context"] for r in log) >= 54
    when = [r for r in log if r["question_id"].endswith("q1")]  # "When did Bob start learning the violin?"
    # its evidence (D2:1) is in the context, and a full context ranks it among the first k=2 items
    assert len(when) == 18
    assert {(r["full_context"], r["recall"], r["context_recall"]) for r in when} == {(True, 1.0, 1.0)}
    assert all((r["tokens"] > 0) != r["abstained"] and r["ms"] > 0 for r in log)
    # the features are the service's (routing.features of each response): the cube's 6 memories in 2 sessions
    assert {(r["features"]["cube_size"], r["features"]["sessions"], r["features"]["cached"]) for r in log} == {
        (6, 2, False)}
    assert {r["features"]["question_word"] for r in when} == {"when"}

    assert sorted(p.name for p in (server_router / "router").iterdir()) == ["policy-v1.json", "policy-v1.npz"]
    header = json.loads((server_router / "router" / "policy-v1.json").read_text())
    assert (header["train_conversations"], header["held_out_conversations"]) == (["conv-t1"], ["conv-t2"])

    saved = json.loads((out / "budgets.json").read_text())
    assert {"low", "mid", "high", "auto", "auto (offline)"} <= set(saved["systems"])
    assert saved["systems"]["auto"]["questions"] == 4  # held-out conversation only
    # offline auto and the λ sweep: the picks `memcubed router train --lambda-sweep` wrote into the header
    sweep = [f"auto λ={lam:g}" for lam in LAMBDA_SWEEP]
    assert set(header["held_out_choices"]) == {"auto", *sweep}
    assert all(len(header["held_out_choices"][name]) == 4 for name in ("auto", *sweep))
    assert all(saved["systems"][name]["questions"] == 4 for name in ("auto (offline)", *sweep))
    assert saved["systems"]["auto"]["agreement_with_policy"] == 1.0  # the service routed as the policy says
    assert saved["auto_reasons"] == ["rule"]  # the full-context shortcut decides before the policy
    assert set(saved["baselines"]) == {"bm25", "full-context"}
    assert saved["calibration"]["questions"] == 8
    table = (out / "budgets.md").read_text()
    for row in ("| low |", "| mid |", "| high |", "| **auto** |", "| auto (offline) |", "| baseline: bm25"):
        assert row in table
    assert "Abstention floor" in table and "Goal (auto within 2 points" in table
    assert (out / "budgets-frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_budgets_refuses_unknown_budget_and_longmemeval(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(eval_app, ["longmemeval", "--dataset", str(tmp_path / "x.json"), "--embedded",
                                 "--budgets", "low"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "LoCoMo only" in result.output
    result = runner.invoke(eval_app, ["locomo", "--dataset", str(tmp_path / "x.json"), "--url", "http://x",
                                 "--api-key", "k", "--budgets", "low,cheap"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "unknown budget(s) cheap; known: low, mid, high, auto" in result.output


def test_embedded_budgets_keep_their_server_between_runs(databases: Databases, tmp_path: Path) -> None:
    """``--embedded``: ``memcubed serve`` over OUT/server, the same admin key, tenant and cubes on a rerun. The
    caller's MEMCUBED_DATABASE_URL reaches the server (test_eval_embedded.py covers the embedded Postgres)."""
    out = tmp_path / "out"
    args = ["locomo", "--dataset", str(two_conversations(tmp_path)), "--embedded", "--budgets", "low,high,auto",
            "--train-conversations", "conv-t1", "--out", str(out), "--top-k", "2"]
    env = {"COLUMNS": "200", "MEMCUBED_DATABASE_URL": pg_sqlalchemy_url(databases.create())}
    first = CliRunner().invoke(eval_app, args, env=env)
    assert first.exit_code == 0, (first.output, first.exception)
    state = json.loads((out / "state.json").read_text())
    keys = json.loads((out / "server-keys.json").read_text())
    assert sorted(state) == ["conv-t1", "conv-t2"] and sorted(keys) == ["admin", "tenant"]
    assert not (out / "server" / "pg").exists()  # the configured Postgres, not an embedded one
    assert sorted(p.name for p in (out / "server" / "router").iterdir()) == ["policy-v1.json", "policy-v1.npz"]
    saved = json.loads((out / "budgets.json").read_text())
    assert saved["systems"]["auto"]["questions"] == 4 and saved["systems"]["auto"]["agreement_with_policy"] == 1.0
    assert {"low", "high", "auto", "auto (offline)"} <= set(saved["systems"]) and "mid" not in saved["systems"]

    again = CliRunner().invoke(eval_app, args, env=env)
    assert again.exit_code == 0, (again.output, again.exception)
    # a restarted server with the same data dir and key: nothing ingested again, the router retrained as v2
    assert json.loads((out / "state.json").read_text()) == state
    assert json.loads((out / "server-keys.json").read_text()) == keys
    assert (out / "server" / "router" / "policy-v2.json").exists()
    log = (out / "server" / "memcubed-serve.log").read_text()
    assert log.count("memcubed listening on") == 2 and log.count("POST /v1/cubes HTTP/1.1") == 2  # 2 cubes, once
    assert log.count("Application shutdown complete") == 2  # stopped (SIGTERM) after each run
