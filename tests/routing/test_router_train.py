"""``memcubed router train``: versioned policy files, a held-out split that never overlaps training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.budget.policy import policy_versions
from app.budget.train import read_log, split_conversations, train
from app.cli import cli
from tests.routing.synthetic import write_log


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_cli_writes_v1_then_v2_with_headers(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.jsonl")
    data_dir = tmp_path / "data"
    code, out = invoke("router", "train", "--from", str(log), "--lambda", "0.1", "--data-dir", str(data_dir))
    assert code == 0, out
    assert "policy v1 (λ=0.1, reward recall)" in out
    assert "trained on c0, c1, c2 (36 questions); held out c3, c4 (24)" in out
    code, out = invoke("router", "train", "--from", str(log), "--lambda", "0.3", "--train-conversations",
                       "c1,c3", "--data-dir", str(data_dir))
    assert code == 0, out
    assert policy_versions(data_dir) == [1, 2]
    assert sorted(p.name for p in (data_dir / "router").iterdir()) == [
        "policy-v1.json", "policy-v1.npz", "policy-v2.json", "policy-v2.npz"]
    header = json.loads((data_dir / "router" / "policy-v2.json").read_text())
    assert (header["version"], header["lambda"], header["reward"]) == (2, 0.3, "recall")
    assert header["train_conversations"] == ["c1", "c3"]
    assert header["held_out_conversations"] == ["c0", "c2", "c4"]
    assert header["combinations"][0] == "retrieval=low,context=low"
    assert header["combinations"][-1] == "retrieval=high,context=high"
    code, out = invoke("router", "show", "--data-dir", str(data_dir))
    assert code == 0 and "policy v2, λ=0.3, trained on c1, c3" in out


def test_held_out_split_never_overlaps_and_the_router_beats_fixed_tiers(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.jsonl")
    trained = train(log, tmp_path / "data", lam=0.1, lams=(0.0, 3.0))
    h = trained.header
    assert (h["train_conversations"], h["held_out_conversations"]) == (["c0", "c1", "c2"], ["c3", "c4"])
    rows = read_log(log)
    train_q = {r.question_id for r in rows if r.conversation_id in h["train_conversations"]}
    held_q = {r.question_id for r in rows if r.conversation_id in h["held_out_conversations"]}
    assert not train_q & held_q and len(held_q) == h["held_out_questions"] == 24
    held = h["metrics"]["held_out"]
    assert held["high"]["reward"] == held["auto"]["reward"] == 1.0  # the "when" half needs high retrieval
    assert held["low"]["reward"] == 0.5
    # auto: low/low for "what" (2 + 0.5 ms), high/low for "when" (40 + 0.5 ms); High pays 50 ms, 1800 tokens
    assert held["auto"]["mean_ms"] == pytest.approx(21.5)
    assert held["high"]["mean_ms"] == pytest.approx(50.0)
    assert (held["auto"]["mean_tokens"], held["high"]["mean_tokens"]) == (300.0, 1800.0)
    assert held["auto"]["picks"] == {"retrieval=low,context=low": 12, "retrieval=high,context=low": 12}
    assert held["auto λ=0"]["reward"] == 1.0
    assert held["auto λ=3"]["picks"] == {"retrieval=low,context=low": 24}  # cost 0.38 x 3 > gain 1
    assert held["oracle"]["reward"] == 1.0


def test_split_defaults_and_errors() -> None:
    assert split_conversations(["b", "a", "c", "a"], None) == (["a", "b"], ["c"])
    assert split_conversations(["a", "b"], ["b"]) == (["b"], ["a"])
    with pytest.raises(ValueError, match="not in the log: z"):
        split_conversations(["a"], ["z"])


def test_bad_input_is_an_error_naming_the_line(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.jsonl")
    log.write_text(log.read_text() + '{"question_id": "x"}\n')
    code, out = invoke("router", "train", "--from", str(log), "--data-dir", str(tmp_path / "data"))
    assert code == 2 and "log.jsonl:541: not a routing log row" in out.replace("\n", "")
    code, out = invoke("router", "train", "--from", str(log), "--reward", "bleu", "--data-dir", str(tmp_path))
    assert code == 2 and "--reward must be one of recall, context_recall, judge" in out
    with pytest.raises(ValueError, match="lambda must be >= 0"):
        train(write_log(tmp_path / "ok.jsonl"), tmp_path / "data", lam=-1.0)
    assert not (tmp_path / "data" / "router").exists()  # nothing written on failure


def test_the_cli_subprocess_writes_the_lambda_sweep_and_per_question_picks(tmp_path: Path) -> None:
    """What ``memcubed-eval locomo --budgets`` relies on: the real console script, as a child process."""
    log = write_log(tmp_path / "log.jsonl")
    data_dir = tmp_path / "data"
    done = subprocess.run([str(Path(sys.executable).parent / "memcubed"), "router", "train", "--from", str(log),
                           "--lambda", "0.1", "--lambda-sweep", "0,3", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=300, env=os.environ | {"COLUMNS": "200"})
    assert done.returncode == 0, done.stdout + done.stderr
    header = json.loads((data_dir / "router" / "policy-v1.json").read_text())
    held = header["metrics"]["held_out"]
    assert {k for k in held if k.startswith("auto")} == {"auto", "auto λ=0", "auto λ=3"}
    assert held["auto λ=3"]["picks"] == {"retrieval=low,context=low": 24}
    held_q = [f"c{c}-q{i}" for c in (3, 4) for i in range(12)]
    choices = header["held_out_choices"]
    assert set(choices) == {"auto", "auto λ=0", "auto λ=3"}
    assert choices["auto λ=3"] == dict.fromkeys(held_q, "retrieval=low,context=low")
    # "when" questions (odd i) need high retrieval; context never pays at λ=0.1
    assert choices["auto"] == {q: "retrieval=high,context=low" if int(q.split("q")[1]) % 2
                               else "retrieval=low,context=low" for q in held_q}
    bad = subprocess.run([str(Path(sys.executable).parent / "memcubed"), "router", "train", "--from", str(log),
                          "--lambda-sweep", "0,x", "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=300, env=os.environ | {"COLUMNS": "200"})
    assert bad.returncode == 2 and "--lambda-sweep must be comma-separated numbers" in bad.stdout + bad.stderr
