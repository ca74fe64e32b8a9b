"""results.json, report.md and PNG plots from a run: memcubed beside every baseline, protocol in the header.

The report is the product: a number in it must be traceable to the dataset file (sha256), the code
(git commit), the settings and the models, and must stand next to what it has to beat.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evals.datasets import LOCOMO_CATEGORIES, LONGMEMEVAL_TYPES
from evals.llm import PROMPT_SOURCES, all_prompts
from evals.metrics import K_VALUES, NDCG_K, aggregate, latency_summary, mean_defined, recall_curve
from evals.runner import MEMCUBED, RunResult

RETRIEVAL_METRICS: tuple[str, ...] = (
    *(f"recall@{k}" for k in K_VALUES),
    *(f"session_recall@{k}" for k in K_VALUES),
    f"ndcg@{NDCG_K}",
    "mrr",
)

PROTOCOL = """\
- **Ingest.** One cube per conversation (LoCoMo) or per question (LongMemEval). Every turn is one memory
  with content `"{speaker}: {text}"`, its `session_id`, `occurred_at` = the session date (read as UTC) and
  `metadata = {"dia_id", "speaker"}`, added through the Python SDK (`memories.add_many`, batches of at most
  500). LoCoMo turns that share an image get `" [shares <blip_caption>]"` appended. Ingest time is the wall
  time of the `add_many` calls.
- **Search.** `client.search(question, [cube], top_k=depth, mode)` with depth = max(top-k, 20); hits map
  back to dataset turn ids through `metadata["dia_id"]`. Latency is the client-side wall time of the HTTP
  call (query embedding included); the server's `took_ms` is kept in results.json. Searches start once the
  cube's background enrichment is done (`enrichment_pending` = 0; the wait is recorded), and one untimed
  warm-up search per run keeps lazy model loading out of the latencies.
- **Baselines** see the same turn texts and are scored on the same ranked-id shape: *full-context* is the
  whole history truncated to the token budget keeping the most recent turns (its ranking is recency order
  inside the budget, so its recall@k equals recency's; its context is everything in the budget);
  *recency* ranks the latest turns first; *bm25* is bm25s (Lucene BM25, English stopwords, Snowball
  stemmer) over turns; *dense* is FAISS `IndexFlatIP` over normalised all-MiniLM-L6-v2 embeddings of turns,
  run in-process (no HTTP, so its latency is not comparable with memcubed's).
- **Metrics.** For each question, the 1-based rank of each gold evidence turn. recall@k = share of gold
  turns in the top k; session recall@k = share of gold sessions touched by the top-k turns; NDCG@10 with
  binary relevance; MRR over the top `depth` (0 when nothing relevant is retrieved). Questions without
  resolvable evidence are left out of these means (n says how many counted). *ctx recall* = share of gold
  turns inside the context handed to an answerer (top-k for retrieval systems, the budget for
  full-context); *ctx tokens* counts that context with the named local tokenizer.
- **Headline** = LoCoMo categories 1-4 (1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop); category 5
  (adversarial) is reported apart. For LongMemEval the headline is every non-abstention question;
  abstention (`_abs`) questions are reported apart, as the official retrieval metrics skip them.
- **With an LLM** (when `MEMCUBED_LLM_BASE_URL` is set): the answerer gets the context above at temperature
  0; LoCoMo answers are judged CORRECT/WRONG as JSON by the judge model (Mem0/MemOS protocol) and also scored
  by token F1 (SQuAD normalisation) and BLEU-1; LoCoMo category 5 uses LoCoMo's rule (the answer must say
  the information is not available); LongMemEval uses its per-question-type yes/no judge prompts and the
  abstention prompt for `_abs` questions.
"""


# --------------------------------------------------------------------------------------------------
# Summaries


def _groups(result: RunResult) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(key, title, records): headline, each category, then the questions reported apart."""
    recs = result.records
    dataset = result.header.get("dataset")
    if dataset == "locomo":
        order = [LOCOMO_CATEGORIES[c] for c in sorted(LOCOMO_CATEGORIES)]
        headline_title, apart_title = "Headline: categories 1-4", "Category 5 (adversarial), reported apart"
    else:
        order = list(LONGMEMEVAL_TYPES)
        headline_title, apart_title = (
            "Headline: non-abstention questions",
            "Abstention (_abs), reported apart",
        )
    groups = [("headline", headline_title, [r for r in recs if r["headline"]])]
    present = {r["category"] for r in recs}
    for cat in order + sorted(present - set(order)):
        sub = [r for r in recs if r["category"] == cat and r["headline"]]
        if sub:
            code = next((r.get("category_code") for r in sub), None)
            title = f"Category {code}: {cat}" if code else cat
            groups.append((f"category:{cat}", title, sub))
    apart = [r for r in recs if not r["headline"]]
    if apart:
        groups.append(("apart", apart_title, apart))
    return groups


def _system_rows(records: Sequence[dict[str, Any]], system: str) -> list[dict[str, Any]]:
    return [r["systems"][system] for r in records if system in r["systems"]]


def summarize(result: RunResult) -> dict[str, Any]:
    """Aggregates per group and system: retrieval metrics, context cost, latency, LLM scores."""
    out: dict[str, Any] = {"groups": {}, "latency_ms": {}, "ingest": {}, "recall_curve": {}}
    for key, title, recs in _groups(result):
        g: dict[str, Any] = {"title": title, "questions": len(recs), "systems": {}}
        for system in result.systems:
            rows = _system_rows(recs, system)
            metrics = aggregate([r["metrics"] for r in rows], RETRIEVAL_METRICS)
            metrics["context_recall"] = dict(
                zip(("mean", "n"), mean_defined(r["context_recall"] for r in rows), strict=True)
            )
            metrics["latency_ms"] = latency_summary([r["latency_ms"] for r in rows])
            tokens = [r["context_tokens"] for r in rows]
            metrics["context_tokens"] = {"mean": float(np.mean(tokens)) if tokens else None, "n": len(tokens)}
            llm_rows = [r["llm"] for r in rows if "llm" in r]
            if llm_rows:
                metrics["llm_accuracy"] = dict(
                    zip(("mean", "n"), mean_defined(float(x["correct"]) for x in llm_rows), strict=True)
                )
                metrics["f1"] = dict(zip(("mean", "n"), mean_defined(x["f1"] for x in llm_rows), strict=True))
                metrics["bleu1"] = dict(zip(("mean", "n"), mean_defined(x["bleu1"] for x in llm_rows), strict=True))
            g["systems"][system] = metrics
        out["groups"][key] = g
    headline = [r for r in result.records if r["headline"]]
    depth = int(result.header["settings"]["depth"])
    for system in result.systems:
        rows = _system_rows(result.records, system)
        out["latency_ms"][system] = latency_summary([r["latency_ms"] for r in rows])
        server = [r["server_ms"] for r in rows if r.get("server_ms") is not None]
        if server:
            out["latency_ms"][f"{system} (server took_ms)"] = latency_summary(server)
        out["recall_curve"][system] = recall_curve([r["ranks"] for r in _system_rows(headline, system)], depth)
    for system in result.systems:
        secs = sum(c["ingest"].get(system, {}).get("seconds", 0.0) for c in result.conversations)
        mems = sum(c["ingest"].get(system, {}).get("memories", 0) for c in result.conversations)
        waits = [c["ingest"].get(system, {}).get("enrichment_wait_seconds") for c in result.conversations]
        out["ingest"][system] = {
            "seconds": secs,
            "memories": mems,
            "enrichment_wait_seconds": sum(w for w in waits if w is not None)
            if any(w is not None for w in waits)
            else None,
            "per_second": mems / secs if secs else None,
        }
    return out


# --------------------------------------------------------------------------------------------------
# Markdown


def _f(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _retrieval_table(group: dict[str, Any], systems: Sequence[str]) -> str:
    headers = [
        "system",
        *(f"R@{k}" for k in K_VALUES),
        "sess R@10",
        f"NDCG@{NDCG_K}",
        "MRR",
        "ctx recall",
        "ctx tokens",
        "p50 ms",
        "p95 ms",
        "n",
    ]
    rows = []
    for s in systems:
        m = group["systems"][s]
        rows.append(
            [
                f"**{s}**" if s == MEMCUBED else s,
                *(_f(m[f"recall@{k}"]["mean"]) for k in K_VALUES),
                _f(m["session_recall@10"]["mean"]),
                _f(m[f"ndcg@{NDCG_K}"]["mean"]),
                _f(m["mrr"]["mean"]),
                _f(m["context_recall"]["mean"]),
                _f(m["context_tokens"]["mean"], 0),
                _f(m["latency_ms"]["p50"], 1),
                _f(m["latency_ms"]["p95"], 1),
                str(m["recall@10"]["n"]),
            ]
        )
    return _table(headers, rows)


def _session_table(group: dict[str, Any], systems: Sequence[str]) -> str:
    headers = ["system", *(f"sess R@{k}" for k in K_VALUES), "n"]
    rows = [
        [
            s,
            *(_f(group["systems"][s][f"session_recall@{k}"]["mean"]) for k in K_VALUES),
            str(group["systems"][s]["session_recall@10"]["n"]),
        ]
        for s in systems
    ]
    return _table(headers, rows)


def _llm_table(summary: dict[str, Any], systems: Sequence[str]) -> str:
    keys = list(summary["groups"])
    headers = ["system", *(summary["groups"][k]["title"] for k in keys)]
    rows = []
    for s in systems:
        cells = [s]
        for k in keys:
            m = summary["groups"][k]["systems"][s]
            if "llm_accuracy" not in m:
                cells.append("—")
                continue
            acc, f1, b1 = m["llm_accuracy"]["mean"], m["f1"]["mean"], m["bleu1"]["mean"]
            cells.append(f"J {_f(acc)} · F1 {_f(f1)} · B1 {_f(b1)} (n={m['llm_accuracy']['n']})")
        rows.append(cells)
    return _table(headers, rows)


def _goal_line(summary: dict[str, Any], systems: Sequence[str]) -> str:
    head = summary["groups"].get("headline")
    if not head or MEMCUBED not in systems:
        return "memcubed was not part of this run (baselines only)."
    mine = head["systems"][MEMCUBED]["recall@10"]["mean"]
    others = {s: head["systems"][s]["recall@10"]["mean"] for s in systems if s != MEMCUBED}
    if mine is None:
        return "No headline question had evidence; recall@10 is undefined."
    lines = [f"memcubed turn recall@10 on the headline questions: **{mine:.3f}**."]
    for s, v in others.items():
        if v is None:
            continue
        verdict = "above" if mine > v else ("equal to" if mine == v else "**below**")
        lines.append(f"- vs {s}: {v:.3f} → memcubed is {verdict} it ({mine - v:+.3f}).")
    return "\n".join(lines)


def render_markdown(result: RunResult, summary: dict[str, Any]) -> str:
    """The human report: header, protocol, tables, cost, LLM part, prompts."""
    h = result.header
    systems = result.systems
    s = h["settings"]
    m = h["models"]
    ev = h["evidence"]
    parts = [
        f"# memcubed evaluation: {h['dataset']}",
        "",
        _table(
            ["field", "value"],
            [
                ["dataset file", f"`{h['dataset_path']}`"],
                ["dataset sha256", f"`{h['dataset_sha256']}`"],
                ["git commit", f"`{h['git_commit']}`"],
                ["started / finished (UTC)", f"{h['started_at']} / {h['finished_at']}"],
                ["service", str(s["service"])],
                ["systems", ", ".join(systems)],
                ["top-k (context) / depth (scored)", f"{s['top_k']} / {s['depth']}"],
                ["search mode", s["mode"]],
                ["full-context budget", f"{s['context_budget_tokens']} tokens"],
                ["ingest batch size", str(s["batch_size"])],
                ["conversations", f"{s['conversations']} ({len(result.conversations)} run)"],
                [
                    "questions",
                    f"{len(result.records)} (max per conversation: {s['max_questions_per_conversation']})",
                ],
                ["embedding model", m["embedding"]],
                ["context tokenizer", m["tokenizer"]],
                ["answerer / judge", f"{m['answerer'] or '—'} / {m['judge'] or '—'}"],
                ["versions", ", ".join(f"{k} {v}" for k, v in h["versions"].items())],
            ],
        ),
        "",
        "## Protocol",
        "",
        PROTOCOL,
        "## Goal: memcubed recall@10 above every baseline",
        "",
        _goal_line(summary, systems),
        "",
    ]
    latency = summary["latency_ms"]
    per_category_heading = False
    for key, group in summary["groups"].items():
        level = "##" if key in ("headline", "apart") else "###"
        if key.startswith("category:") and not per_category_heading:
            parts += ["## Per category", ""]
            per_category_heading = True
        parts += [f"{level} {group['title']} ({group['questions']} questions)", ""]
        parts += [_retrieval_table(group, systems), ""]
        if key == "headline":
            parts += ["Session level:", "", _session_table(group, systems), ""]
    parts += ["## Cost", "", "Search latency per query (ms):", ""]
    parts.append(
        _table(
            ["system", "n", "p50", "p95", "p99", "mean", "max"],
            [
                [
                    k,
                    str(v["n"]),
                    _f(v["p50"], 1),
                    _f(v["p95"], 1),
                    _f(v["p99"], 1),
                    _f(v["mean"], 1),
                    _f(v["max"], 1),
                ]
                for k, v in latency.items()
            ],
        )
    )
    parts += ["", "Ingest / indexing (all conversations):", ""]
    parts.append(
        _table(
            ["system", "memories", "seconds", "memories/s", "then waited for enrichment (s)"],
            [
                [
                    k,
                    str(v["memories"]),
                    _f(v["seconds"], 2),
                    _f(v["per_second"], 1),
                    _f(v.get("enrichment_wait_seconds"), 1),
                ]
                for k, v in summary["ingest"].items()
            ],
        )
    )
    parts += [
        "",
        "memcubed's ingest is HTTP `add_many` including server-side embedding; the baselines' figure is "
        "their in-process index build (dense includes embedding every turn).",
        "",
        "## Evidence annotations",
        "",
        f"Whole dataset file: {ev['total']} gold evidence entries: {ev['exact']} exact, "
        f"{ev['repaired']} malformed but repaired, {ev['unresolved']} unresolved; "
        f"{ev['questions_without_evidence']} questions have no usable evidence "
        "(left out of the retrieval means).",
        "",
    ]
    if ev["unresolved_entries"]:
        parts.append(
            _table(
                ["question", "entry", "reason"],
                [[u["question"], f"`{u['entry']}`", u["reason"]] for u in ev["unresolved_entries"]],
            )
        )
        parts.append("")
    parts += ["## Answer quality with an LLM", ""]
    if h["llm_enabled"]:
        parts += [
            f"Answerer `{m['answerer']}`, judge `{m['judge']}` at `{m['llm_base_url']}`, temperature 0. "
            "J = judge accuracy, F1 = token F1, B1 = BLEU-1 (lexical scores are not computed for "
            "adversarial/abstention questions).",
            "",
            _llm_table(summary, [s for s in systems if s in h.get("llm_systems", systems)]),
            "",
        ]
    else:
        parts += [
            "Skipped: no LLM endpoint configured (set `MEMCUBED_LLM_BASE_URL`, `MEMCUBED_LLM_API_KEY`, "
            "`MEMCUBED_LLM_MODEL`, `MEMCUBED_JUDGE_MODEL`). The retrieval figures above need no LLM.",
            "",
        ]
    parts += ["## Plots", "", "![recall@k](recall_at_k.png)", "", "![latency](latency.png)", ""]
    parts += ["## Prompts", "", PROMPT_SOURCES, ""]
    for name, text in all_prompts().items():
        parts += [f"### {name}", "", "```text", text, "```", ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------
# Plots


def plot_recall(summary: dict[str, Any], systems: Sequence[str], path: Path, title: str) -> None:
    """Turn-level recall@k for k = 1..depth, one line per system (headline questions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for s in systems:
        curve = summary["recall_curve"][s]
        ax.plot(
            range(1, len(curve) + 1),
            curve,
            linestyle="--" if s == "full-context" else "-",  # it coincides with recency inside its budget
            marker="o",
            markersize=3,
            linewidth=2.5 if s == MEMCUBED else 1.5,
            label=s,
        )
    ax.set_xlabel("k (turns retrieved)")
    ax.set_ylabel("turn recall@k")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latency(result: RunResult, path: Path, title: str) -> None:
    """Per-query search latency distribution per system (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = []
    labels = []
    for s in result.systems:
        vals = [max(r["latency_ms"], 1e-3) for r in _system_rows(result.records, s)]
        if vals:
            data.append(vals)
            labels.append(s)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    if data:
        ax.boxplot(data, tick_labels=labels, vert=False, showfliers=True)
        ax.set_xscale("log")
    ax.set_xlabel("search latency per query (ms, log scale)")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(result: RunResult, out_dir: Path) -> dict[str, Path]:
    """Write results.json, report.md, recall_at_k.png and latency.png; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(result)
    paths = {
        "results": out_dir / "results.json",
        "report": out_dir / "report.md",
        "recall_plot": out_dir / "recall_at_k.png",
        "latency_plot": out_dir / "latency.png",
    }
    payload = {
        "header": result.header,
        "systems": result.systems,
        "summary": summary,
        "conversations": result.conversations,
        "questions": result.records,
    }
    paths["results"].write_text(json.dumps(payload, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    paths["report"].write_text(render_markdown(result, summary), encoding="utf-8")
    name = result.header["dataset"]
    plot_recall(
        summary,
        result.systems,
        paths["recall_plot"],
        f"{name}: turn recall@k ({summary['groups'].get('headline', {}).get('title', '')})",
    )
    plot_latency(result, paths["latency_plot"], f"{name}: search latency")
    return paths
