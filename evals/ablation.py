"""Retrieval ablation on LoCoMo: ingest each conversation once, then search every question under each
configuration of fine retrieval (dense → + BM25 → + windows → + SPLADE → + time and types → + graph), so
every figure comes from the same cubes in the same run."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import memcubed
from rich.console import Console
from rich.progress import Progress

from evals.datasets import Conversation, load_locomo
from evals.metrics import recall_at_k
from evals.runner import MemcubedSystem, ServiceTarget

HEADLINE = (1, 2, 3, 4)
CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


@dataclass(frozen=True)
class Config:
    name: str
    mode: Literal["fast", "fine"]
    channels: tuple[str, ...] | None = None
    graph: bool = False

    def options(self) -> dict[str, Any]:
        """Fine-mode parameters; fast mode takes none."""
        if self.mode == "fast":
            return {}
        out: dict[str, Any] = {"graph": self.graph}
        if self.channels is not None:
            out["channels"] = list(self.channels)
        return out


CONFIGS = (
    Config("dense (fast mode)", "fast"),
    Config("+ BM25", "fine", ("dense", "bm25")),
    Config("+ session windows", "fine", ("dense", "dense_window", "bm25_window", "bm25_window2")),
    Config("+ SPLADE", "fine", ("dense", "dense_window", "bm25_window", "bm25_window2", "splade",
                                "splade_window", "splade_window2")),
    Config("+ time + per-type", "fine", None, graph=False),
    Config("+ graph (fine mode default)", "fine", None, graph=True),
)


@dataclass
class Tally:
    recalls: dict[int, list[float]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def headline(self) -> float:
        values = [r for c in HEADLINE for r in self.recalls.get(c, [])]
        return statistics.fmean(values) if values else 0.0

    def category(self, c: int) -> float:
        values = self.recalls.get(c, [])
        return statistics.fmean(values) if values else 0.0

    def latency(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run_ablation(dataset: Path, target: ServiceTarget, conversations: list[str] | None, out_dir: Path,
                 k: int = 10, console: Console | None = None) -> dict[str, Tally]:
    console = console or Console()
    data = load_locomo(dataset).select(conversations)
    tallies = {c.name: Tally() for c in CONFIGS}
    convs: list[Conversation] = list(data.conversations)
    with memcubed.Client(target.url, target.api_key, timeout=120) as client, Progress(console=console) as bar:
        task = bar.add_task("ablation: conversations", total=len(convs))
        for conv in convs:
            system = MemcubedSystem(client, "fine", 500, keep_cubes=False)
            system.ingest("locomo", conv, lambda _n: None)
            assert system.cube_id is not None
            questions = [q for q in conv.questions if q.category_code in HEADLINE and q.evidence]
            for cfg in CONFIGS:
                tally = tallies[cfg.name]
                for q in questions:
                    ranked, latency_ms, _, _ = system.search(q, k, cfg.mode, **cfg.options())
                    tally.latencies.append(latency_ms)
                    recall = recall_at_k(ranked, set(q.evidence), k)
                    if recall is not None and q.category_code is not None:
                        tally.recalls.setdefault(q.category_code, []).append(recall)
            system.cleanup()
            bar.advance(task)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ablation.md").write_text(report(tallies, k, dataset, conversations))
    (out_dir / "ablation.json").write_text(json.dumps(
        {name: {"recall_at_k": t.headline(), "per_category": {c: t.category(c) for c in HEADLINE},
                "p50_ms": t.latency(0.5), "p95_ms": t.latency(0.95)} for name, t in tallies.items()}, indent=2))
    plot(tallies, out_dir / "ablation.png", k)
    return tallies


def report(tallies: dict[str, Tally], k: int, dataset: Path, conversations: list[str] | None) -> str:
    head = (f"| configuration | R@{k} (cat 1-4) | " + " | ".join(f"{CATEGORY_NAMES[c]}" for c in HEADLINE)
            + " | p50 ms | p95 ms |")
    lines = [f"## Retrieval ablation on LoCoMo ({dataset.name}, conversations: {conversations or 'all'})", "",
             head, "|" + " --- |" * (len(HEADLINE) + 4)]
    for name, t in tallies.items():
        cats = " | ".join(f"{t.category(c):.3f}" for c in HEADLINE)
        lines.append(f"| {name} | **{t.headline():.3f}** | {cats} | {t.latency(0.5):.1f} | {t.latency(0.95):.1f} |")
    lines.append("")
    lines.append(f"Turn recall@{k}: share of a question's gold evidence turns among the top {k}; latency is the "
                 "client-side HTTP time of one search, query encoding included.")
    return "\n".join(lines) + "\n"


def plot(tallies: dict[str, Tally], path: Path, k: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(tallies)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.barh(names[::-1], [tallies[n].headline() for n in names[::-1]], color="#4c72b0")
    for i, n in enumerate(names[::-1]):
        ax.text(tallies[n].headline() + 0.005, i, f"{tallies[n].headline():.3f}", va="center")
    ax.set_xlabel(f"turn recall@{k}, LoCoMo categories 1-4")
    ax.set_xlim(0, 1)
    ax.set_title("memcubed retrieval ablation")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
