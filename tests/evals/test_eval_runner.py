"""A run without a service (baselines only): exact metrics, checkpoints, resume, LLM stage, report, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from evals.cli import eval_app
from evals.llm import LLMConfig
from evals.report import summarize, write_report
from evals.runner import RunConfig, RunResult, run
from tests.evals.fake_llm import fake_llm_server
from tests.evals.tiny import write_tiny_locomo

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "longmemeval" / "longmemeval_fixture.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _config(data: Path, out: Path, **kw: object) -> RunConfig:
    return RunConfig(
        dataset="locomo",
        dataset_path=data,
        out_dir=out,
        top_k=2,
        baselines=["recency", "bm25"],
        show_progress=False,
        **kw,  # type: ignore[arg-type]
    )


def _metric(summary: dict, group: str, system: str, name: str) -> float | None:
    return summary["groups"][group]["systems"][system][name]["mean"]


def test_baselines_only_run_exact_metrics(tmp_path: Path) -> None:
    data = write_tiny_locomo(tmp_path)
    result = run(_config(data, tmp_path / "out"), target=None)
    assert result.systems == ["recency", "bm25"]
    assert [r["question_id"] for r in result.records] == [f"conv-t1/q{i}" for i in range(6)]
    q0 = result.records[0]["systems"]
    assert q0["recency"]["ranks"] == {"D1:1": 6}
    assert q0["bm25"]["ranked"] == ["D1:1", "D1:2", "D1:3", "D2:2"]
    assert q0["bm25"]["ranks"] == {"D1:1": 1}
    assert result.records[4]["systems"]["bm25"]["ranked"] == []
    s = summarize(result)
    head = "headline"
    # recency: ranks q0 6, q1 3, q2 (3, 1), q4 (6, 1)
    assert _metric(s, head, "recency", "recall@1") == pytest.approx(0.25)
    assert _metric(s, head, "recency", "recall@5") == pytest.approx(0.625)
    assert _metric(s, head, "recency", "recall@10") == pytest.approx(1.0)
    assert _metric(s, head, "recency", "mrr") == pytest.approx((1 / 6 + 1 / 3 + 1 + 1) / 4)
    assert _metric(s, head, "recency", "context_recall") == pytest.approx(0.25)  # top-2 = D2:3, D2:2
    # bm25: ranks q0 1, q1 1, q2 (2, 1), q4 none
    assert _metric(s, head, "bm25", "recall@1") == pytest.approx(0.625)
    assert _metric(s, head, "bm25", "recall@5") == pytest.approx(0.75)
    assert _metric(s, head, "bm25", "mrr") == pytest.approx(0.75)
    assert _metric(s, head, "bm25", "session_recall@1") == pytest.approx((1 + 1 + 1 + 0) / 4)
    assert s["groups"][head]["systems"]["bm25"]["recall@10"]["n"] == 4  # q5 has no usable evidence
    assert s["groups"]["apart"]["questions"] == 1
    assert _metric(s, "apart", "bm25", "recall@1") == 0.0  # q3: D1:3 ranked 3rd
    assert list(s["groups"]) == [
        "headline",
        "category:multi-hop",
        "category:temporal",
        "category:open-domain",
        "category:single-hop",
        "apart",
    ]
    assert s["ingest"]["bm25"]["memories"] == 6


def test_checkpoint_resume_and_llm_stage(tmp_path: Path) -> None:
    data = write_tiny_locomo(tmp_path)
    out = tmp_path / "out"
    run(_config(data, out), target=None)
    ckpt_path = out / "checkpoints" / "conv-t1.json"
    ckpt = json.loads(ckpt_path.read_text())
    assert ckpt["llm_fingerprint"] is None and ckpt["answers"] == {}
    ckpt["records"][0]["systems"]["recency"]["latency_ms"] = 12345.0  # a sentinel only a reload can show
    ckpt_path.write_text(json.dumps(ckpt))

    with fake_llm_server() as llm:
        cfg = LLMConfig(base_url=llm.url, api_key=None, model="answer-model", judge_model="judge-model")
        result = run(_config(data, out, llm=cfg), target=None)
        # retrieval came from the checkpoint; only the LLM stage ran: 6 answers + 5 judge calls, x 2 systems
        assert result.records[0]["systems"]["recency"]["latency_ms"] == 12345.0
        assert len(llm.requests) == 6 * 2 + 5 * 2
        n_requests = len(llm.requests)
        again = run(_config(data, out, llm=cfg), target=None)  # fully checkpointed now
        assert len(llm.requests) == n_requests
    assert again.records[1]["systems"]["bm25"]["llm"]["answer"] == "In June 2023"
    llm_q1 = result.records[1]["systems"]["bm25"]["llm"]
    assert llm_q1["correct"] is True and llm_q1["f1"] == pytest.approx(0.8) and llm_q1["bleu1"] == pytest.approx(2 / 3)
    s = summarize(result)
    for system in ("recency", "bm25"):
        # correct: q0 (Rex), q1 (June 2023); wrong: q2, q4, q5
        assert _metric(s, "headline", system, "llm_accuracy") == pytest.approx(0.4)
        assert _metric(s, "headline", system, "f1") == pytest.approx((1 + 0.8) / 5)
        assert _metric(s, "headline", system, "bleu1") == pytest.approx((1 + 2 / 3) / 5)
        assert _metric(s, "apart", system, "llm_accuracy") == 1.0  # "Not mentioned ..." by LoCoMo's rule
        assert _metric(s, "apart", system, "f1") is None

    fresh = run(_config(data, out, resume=False), target=None)
    assert fresh.records[0]["systems"]["recency"]["latency_ms"] != 12345.0
    assert "llm" not in fresh.records[0]["systems"]["recency"]


def test_checkpoint_ignored_when_settings_change(tmp_path: Path) -> None:
    data = write_tiny_locomo(tmp_path)
    out = tmp_path / "out"
    run(_config(data, out), target=None)
    changed = run(RunConfig("locomo", data, out, top_k=1, baselines=["recency"], show_progress=False), target=None)
    assert changed.systems == ["recency"]
    assert changed.records[0]["systems"]["recency"]["context_size"] == 1


def _check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as img:
        img.verify()


def test_report_files(tmp_path: Path) -> None:
    data = write_tiny_locomo(tmp_path)
    out = tmp_path / "out"
    with fake_llm_server() as llm:
        cfg = LLMConfig(base_url=llm.url, api_key=None, model="answer-model", judge_model="judge-model")
        result = run(_config(data, out, llm=cfg, llm_systems=["bm25"]), target=None)
    paths = write_report(result, out)
    md = paths["report"].read_text()
    assert "| dataset sha256 | `" + result.header["dataset_sha256"] + "` |" in md
    assert "| git commit |" in md and "| answerer / judge | answer-model / judge-model |" in md
    assert "## Headline: categories 1-4 (5 questions)" in md
    assert "| system | R@1 | R@5 | R@10 | R@20 | sess R@10 | NDCG@10 | MRR | ctx recall | ctx tokens |" in md
    assert "| recency | 0.250 | 0.625 | 1.000 | 1.000 |" in md
    assert "| bm25 | 0.625 | 0.750 | 0.750 | 0.750 |" in md
    assert "### Category 1: multi-hop (1 questions)" in md
    assert "## Category 5 (adversarial), reported apart (1 questions)" in md
    assert "| bm25 | J 0.400 · F1 0.360 · B1 0.333 (n=5) |" in md
    llm_part = md.split("## Answer quality with an LLM")[1].split("## Plots")[0]
    assert "| recency |" not in llm_part  # only the systems asked for were answered
    assert "2 unresolved" in md and "`D9:9`" in md
    assert "### locomo_judge" in md and "### longmemeval_judge[abstention]" in md
    assert "memcubed was not part of this run" in md
    payload = json.loads(paths["results"].read_text())
    assert payload["header"]["dataset"] == "locomo"
    assert payload["questions"][0]["systems"]["bm25"]["ranks"] == {"D1:1": 1}
    assert "latency_ms" in payload["questions"][0]["systems"]["bm25"]
    _check_png(paths["recall_plot"])
    _check_png(paths["latency_plot"])


def test_report_without_llm_says_so(tmp_path: Path) -> None:
    data = write_tiny_locomo(tmp_path)
    result: RunResult = run(_config(data, tmp_path / "out"), target=None)
    md = write_report(result, tmp_path / "out")["report"].read_text()
    assert "Skipped: no LLM endpoint configured" in md


def test_longmemeval_run(tmp_path: Path) -> None:
    cfg = RunConfig("longmemeval", FIXTURE, tmp_path / "out", top_k=2, baselines=["bm25"], show_progress=False)
    result = run(cfg, target=None)
    assert [r["question_id"] for r in result.records] == ["e47becba", "gpt4_2655b836", "0a995998_abs"]
    first = result.records[0]["systems"]["bm25"]
    assert first["ranks"] == {"answer_280352e9:1": 1}  # "degree ... graduate"
    s = summarize(result)
    assert s["groups"]["headline"]["questions"] == 2
    assert s["groups"]["apart"]["title"] == "Abstention (_abs), reported apart"
    assert "category:single-session-user" in s["groups"]
    paths = write_report(result, tmp_path / "out")
    assert "## Headline: non-abstention questions (2 questions)" in paths["report"].read_text()


def test_cli(tmp_path: Path) -> None:
    data = write_tiny_locomo(tmp_path)
    cli = CliRunner()
    env = {"MEMCUBED_LLM_BASE_URL": "", "MEMCUBED_API_KEY": ""}
    out = tmp_path / "out"
    res = cli.invoke(
        eval_app,
        [
            "locomo",
            "--dataset",
            str(data),
            "--baselines-only",
            "--baselines",
            "bm25,recency",
            "--out",
            str(out),
        ],
        env=env,
    )
    assert res.exit_code == 0, res.output
    assert (out / "report.md").is_file() and (out / "results.json").is_file()
    assert json.loads((out / "results.json").read_text())["systems"] == ["bm25", "recency"]
    res = cli.invoke(eval_app, ["locomo", "--dataset", str(data)], env=env)
    assert res.exit_code == 2 and "exactly one of --url URL, --embedded or --baselines-only" in res.output
    res = cli.invoke(eval_app, ["locomo", "--dataset", str(data), "--url", "http://127.0.0.1:9"], env=env)
    assert res.exit_code == 2 and "--api-key or MEMCUBED_API_KEY" in res.output
    res = cli.invoke(eval_app, ["locomo", "--dataset", str(data), "--baselines-only", "--baselines", "bm26"], env=env)
    assert res.exit_code == 2 and "unknown baseline(s) bm26" in res.output
    bad = tmp_path / "lme.json"
    bad.write_text('{"questions": []}')
    res = cli.invoke(eval_app, ["longmemeval", "--dataset", str(bad), "--baselines-only", "--out", str(out)], env=env)
    assert res.exit_code == 2 and "top level is dict" in res.output


def test_longmemeval_llm_stage(tmp_path: Path) -> None:
    with fake_llm_server() as llm:
        cfg = LLMConfig(base_url=llm.url, api_key=None, model="answer-model", judge_model="judge-model")
        config = RunConfig(
            "longmemeval", FIXTURE, tmp_path / "out", top_k=2, baselines=["bm25"], llm=cfg, show_progress=False
        )
        result = run(config, target=None)
    prompts = [r["messages"][0]["content"] for r in llm.requests]
    assert "Current Date: 2023/05/30 (Tue) 23:40\nQuestion: What degree did I graduate with?" in prompts[0]
    assert sum("identify the question as unanswerable" in p for p in prompts) == 1  # the _abs question
    assert sum("off-by-one" in p for p in prompts) == 1  # the temporal-reasoning question
    by_id = {r["question_id"]: r["systems"]["bm25"]["llm"] for r in result.records}
    assert by_id["e47becba"]["answer"] == "Business Administration" and by_id["e47becba"]["correct"] is True
    assert by_id["e47becba"]["f1"] == 1.0
    assert by_id["gpt4_2655b836"]["correct"] is False
    assert by_id["0a995998_abs"]["correct"] is False and by_id["0a995998_abs"]["f1"] is None
    s = summarize(result)
    assert _metric(s, "headline", "bm25", "llm_accuracy") == 0.5
    assert _metric(s, "apart", "bm25", "llm_accuracy") == 0.0
