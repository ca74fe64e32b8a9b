"""``memcubed-eval locomo|longmemeval|ablation``: one command from dataset file to report.

Its own distribution (``memcubed-evals``, evals/pyproject.toml): a client of the service through the SDK
and, for ``--embedded`` and the router, through the server's ``memcubed`` CLI as a child process.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from evals import abstention as abstention_eval
from evals import tuning
from evals.abstention import MAX_FALSE
from evals.baselines import BASELINE_NAMES, DEFAULT_CONTEXT_BUDGET
from evals.datasets import DatasetFormatError, DatasetName
from evals.llm import LLMConfig
from evals.runner import RunConfig, ServiceTarget, embedded_target, run
from evals.server import ServerCommandError

eval_app = typer.Typer(
    help="Evaluate memcubed on LoCoMo / LongMemEval, with baselines measured in the same run.",
    no_args_is_help=True,
)
console = Console(stderr=True)

DatasetOpt = Annotated[Path, typer.Option("--dataset", help="Path to the dataset file (never copied).")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="A running memcubed (needs a tenant API key).")]
EmbeddedOpt = Annotated[bool, typer.Option("--embedded", help="Start a throwaway memcubed for this run.")]
ApiKeyOpt = Annotated[
    str | None, typer.Option("--api-key", envvar="MEMCUBED_API_KEY", help="Tenant API key for --url.")
]
TopKOpt = Annotated[int, typer.Option("--top-k", min=1, max=500, help="Memories handed to the answerer.")]
ConvOpt = Annotated[
    str | None,
    typer.Option("--conversations", help="Comma-separated ids (LoCoMo sample ids / LongMemEval question ids)."),
]
ModeOpt = Annotated[str, typer.Option("--mode", help="Search mode passed to the service: fast | fine.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Output dir (results.json, report.md, PNGs, checkpoints).")]
BaselinesOpt = Annotated[
    str, typer.Option("--baselines", help=f"Comma-separated subset of {','.join(BASELINE_NAMES)}, or 'none'.")
]
BudgetOpt = Annotated[int, typer.Option("--context-budget", min=1, help="Token budget of the full-context baseline.")]
MaxQOpt = Annotated[int | None, typer.Option("--max-questions", min=1, help="Per conversation (smoke runs).")]
NoServiceOpt = Annotated[bool, typer.Option("--baselines-only", help="Run only the baselines, no memcubed.")]
FreshOpt = Annotated[bool, typer.Option("--fresh", help="Ignore checkpoints from an earlier run.")]
KeepOpt = Annotated[bool, typer.Option("--keep-cubes", help="Do not delete the evaluation cubes afterwards.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data dir for --embedded (default: temporary).")]
LlmSystemsOpt = Annotated[
    str | None, typer.Option("--llm-systems", help="Systems to answer+judge with the LLM (default: all).")
]
LlmConcOpt = Annotated[int, typer.Option("--llm-concurrency", min=1, max=64, help="Parallel LLM requests.")]
BudgetsOpt = Annotated[str | None, typer.Option(
    "--budgets", help="LoCoMo only: compare tier sets, e.g. low,mid,high,auto (logs every tier combination, trains "
    "the router on --train-conversations, reports on the others; see evals/budgets.py).")]
LambdaOpt = Annotated[float, typer.Option("--lambda", min=0.0, help="With --budgets: the router's cost weight.")]
TrainConvOpt = Annotated[str | None, typer.Option(
    "--train-conversations", help="With --budgets: ids to train the router on (default: first 60 %).")]


def _abort(label: str, exc: Exception, code: int) -> NoReturn:
    console.print(f"[red]{label}:[/red] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(code) from exc


def _target(url: str | None, embedded: bool, api_key: str | None,
            data_dir: Path | None) -> AbstractContextManager[ServiceTarget]:
    """The service to measure: a ``memcubed serve`` child (``--embedded``) or a running one (``--url``, tenant key)."""
    if embedded:
        return embedded_target(data_dir)
    key = api_key or os.environ.get("MEMCUBED_API_KEY")
    if not key:
        raise typer.BadParameter("--url needs --api-key or MEMCUBED_API_KEY (a tenant key)")
    return nullcontext(ServiceTarget(str(url).rstrip("/"), key))


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _execute(
    dataset: DatasetName,
    dataset_path: Path,
    url: str | None,
    embedded: bool,
    api_key: str | None,
    top_k: int,
    conversations: str | None,
    mode: str,
    out: Path | None,
    baselines: str,
    context_budget: int,
    max_questions: int | None,
    baselines_only: bool,
    fresh: bool,
    keep_cubes: bool,
    data_dir: Path | None,
    llm_systems: str | None,
    llm_concurrency: int,
) -> None:
    if mode not in ("fast", "fine"):
        raise typer.BadParameter(f"--mode must be fast or fine, not {mode!r}")
    if sum([bool(url), embedded, baselines_only]) != 1:
        raise typer.BadParameter("give exactly one of --url URL, --embedded or --baselines-only")
    base = [] if baselines.strip() == "none" else (_split(baselines) or [])
    unknown = [b for b in base if b not in BASELINE_NAMES]
    if unknown:
        raise typer.BadParameter(f"unknown baseline(s) {', '.join(unknown)}; known: {', '.join(BASELINE_NAMES)}")
    llm = LLMConfig.from_env()
    config = RunConfig(
        dataset=dataset,
        dataset_path=dataset_path,
        out_dir=out or Path("eval-out") / dataset,
        top_k=top_k,
        mode=mode,
        conversations=_split(conversations),
        baselines=base,
        context_budget=context_budget,
        max_questions=max_questions,
        keep_cubes=keep_cubes,
        resume=not fresh,
        llm=llm,
        llm_systems=_split(llm_systems),
        llm_concurrency=llm_concurrency,
        show_progress=True,
    )
    if llm is None:
        console.print("[yellow]No MEMCUBED_LLM_BASE_URL: the answer-and-judge part is skipped.[/yellow]")
    target_cm: AbstractContextManager[ServiceTarget | None] = (
        _target(url, embedded, api_key, data_dir) if embedded or url else nullcontext(None))
    from evals.report import write_report

    try:
        with target_cm as target:
            result = run(config, target, console=console)
    except DatasetFormatError as exc:
        _abort("dataset error", exc, 2)
    except ServerCommandError as exc:
        _abort("server error", exc, 1)
    paths = write_report(result, config.out_dir)
    for name, path in paths.items():
        console.print(f"{name}: {path}", soft_wrap=True)


def _budgets(dataset: DatasetName, dataset_path: Path, url: str | None, embedded: bool, api_key: str | None,
             top_k: int, conversations: str | None, out: Path | None, max_questions: int | None,
             data_dir: Path | None, budgets: str, lam: float, train_conversations: str | None) -> None:
    """``--budgets``: the tier/router evaluation. ``--embedded`` keeps its server in OUT/server (or
    ``--data-dir``) between runs; with ``--url``, ``--data-dir`` names that server's data dir so the trained
    router reaches it (else ``auto`` is evaluated offline from the log only)."""
    from evals.budgets import BUDGETS, BudgetConfig, Service, persistent_embedded, run_budgets

    if dataset != "locomo":
        raise typer.BadParameter("--budgets runs on LoCoMo only")
    unknown = [b for b in _split(budgets) or [] if b not in BUDGETS]
    if unknown:
        raise typer.BadParameter(f"unknown budget(s) {', '.join(unknown)}; known: {', '.join(BUDGETS)}")
    if bool(url) == embedded:
        raise typer.BadParameter("give exactly one of --url URL or --embedded")
    config = BudgetConfig(dataset_path=dataset_path, out_dir=out or Path("eval-out") / "budgets",
                          budgets=_split(budgets) or [], conversations=_split(conversations),
                          train_conversations=_split(train_conversations), max_questions=max_questions,
                          top_k=top_k, lam=lam)
    service_cm: AbstractContextManager[Service]
    if embedded:
        service_cm = persistent_embedded(config.out_dir, data_dir)
    else:
        key = api_key or os.environ.get("MEMCUBED_API_KEY")
        if not key:
            raise typer.BadParameter("--url needs --api-key or MEMCUBED_API_KEY (a tenant key)")
        service_cm = nullcontext(Service(str(url).rstrip("/"), key, data_dir))
    try:
        with service_cm as service:
            paths = run_budgets(config, service, console=console)
    except (ValueError, DatasetFormatError) as exc:
        _abort("error", exc, 2)
    except ServerCommandError as exc:
        _abort("server error", exc, 1)
    console.print(paths["table"].read_text(), soft_wrap=True)
    for name, path in paths.items():
        console.print(f"{name}: {path}", soft_wrap=True)


def _dataset_command(name: DatasetName, doc: str) -> None:
    """Register ``memcubed-eval NAME``: both datasets take the same options."""

    def command(
        dataset: DatasetOpt,
        url: UrlOpt = None,
        embedded: EmbeddedOpt = False,
        api_key: ApiKeyOpt = None,
        top_k: TopKOpt = 10,
        conversations: ConvOpt = None,
        mode: ModeOpt = "fast",
        out: OutOpt = None,
        baselines: BaselinesOpt = ",".join(BASELINE_NAMES),
        context_budget: BudgetOpt = DEFAULT_CONTEXT_BUDGET,
        max_questions: MaxQOpt = None,
        baselines_only: NoServiceOpt = False,
        fresh: FreshOpt = False,
        keep_cubes: KeepOpt = False,
        data_dir: DataDirOpt = None,
        llm_systems: LlmSystemsOpt = None,
        llm_concurrency: LlmConcOpt = 4,
        budgets: BudgetsOpt = None,
        lam: LambdaOpt = 0.1,
        train_conversations: TrainConvOpt = None,
    ) -> None:
        if budgets:
            _budgets(name, dataset, url, embedded, api_key, top_k, conversations, out, max_questions, data_dir,
                     budgets, lam, train_conversations)
            return
        _execute(name, dataset, url, embedded, api_key, top_k, conversations, mode, out, baselines, context_budget,
                 max_questions, baselines_only, fresh, keep_cubes, data_dir, llm_systems, llm_concurrency)

    command.__doc__ = doc
    eval_app.command(name)(command)


_dataset_command("locomo", "LoCoMo (locomo10.json): one cube per conversation; headline = categories 1-4.")
_dataset_command("longmemeval", "LongMemEval (official longmemeval_s/m/oracle JSON): one cube per question.")


@eval_app.command("ablation")
def ablation(
    dataset: DatasetOpt,
    url: UrlOpt = None,
    embedded: EmbeddedOpt = False,
    api_key: ApiKeyOpt = None,
    conversations: ConvOpt = None,
    out: OutOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """LoCoMo retrieval ablation: dense → + BM25 → + windows → + SPLADE → + time → + graph, on the same cubes."""
    from evals.ablation import run_ablation

    if bool(url) == embedded:
        raise typer.BadParameter("give exactly one of --url URL or --embedded")
    target_cm = _target(url, embedded, api_key, data_dir)
    out_dir = out or Path("eval-out") / "ablation"
    try:
        with target_cm as target:
            run_ablation(dataset, target, _split(conversations), out_dir, console=console)
    except ServerCommandError as exc:
        _abort("server error", exc, 1)
    console.print((out_dir / "ablation.md").read_text(), soft_wrap=True)


FoldDatasetOpt = Annotated[Path | None, typer.Option(
    "--dataset", help="LoCoMo file; not needed when an earlier run's collected file is given.")]
RepeatsOpt = Annotated[int, typer.Option("--repeats", min=1, help="Seeded 2-way splits (5 gives 5 x 2 folds).")]
Collector = Callable[[Path, ServiceTarget, Sequence[str] | None, Path, Console], Path]


def _collected(cached: Path | None, flag: str, dataset: Path | None, url: str | None, embedded: bool,
               api_key: str | None, data_dir: Path | None, conversations: str | None, out_file: Path,
               collect: Collector) -> Path:
    """An earlier run's collected file, or a new collection through the service (``--url`` or ``--embedded``):
    the slow part, so that choosing constants from it can be repeated offline."""
    if cached is not None:
        return cached
    if dataset is None or bool(url) == embedded:
        raise typer.BadParameter(f"give --dataset and exactly one of --url URL or --embedded (or {flag} FILE)")
    try:
        with _target(url, embedded, api_key, data_dir) as target:
            return collect(dataset, target, _split(conversations), out_file, console)
    except ServerCommandError as exc:
        _abort("server error", exc, 1)


def _shown_command() -> str:
    """This run's command line, as a results file records it (an API key replaced by KEY)."""
    shown = list(sys.argv[1:])
    if "--api-key" in shown[:-1]:
        shown[shown.index("--api-key") + 1] = "KEY"
    return "memcubed-eval " + shlex.join(shown)


def _save(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")


@eval_app.command("tune")
def tune(
    dataset: FoldDatasetOpt = None,
    url: UrlOpt = None,
    embedded: EmbeddedOpt = False,
    api_key: ApiKeyOpt = None,
    conversations: ConvOpt = None,
    out: OutOpt = None,
    data_dir: DataDirOpt = None,
    ranks: Annotated[Path | None, typer.Option(
        "--ranks", help="A channel-ranks.jsonl from an earlier run: tune offline, no service needed.")] = None,
    repeats: RepeatsOpt = 5,
    start: Annotated[str | None, typer.Option(
        "--start", help="Weights the ascent starts from, e.g. 'dense=1,bm25_window=2' (default: every channel 1).")]
        = None,
    grid: Annotated[str, typer.Option("--grid", help="Weight values each channel may take.")] = "0,0.5,1,2,3",
    k: Annotated[int, typer.Option("--k", min=1, max=200, help="Recall@k to maximise and report.")] = 10,
) -> None:
    """Fusion weights by conversation folds: tune on half the conversations, report recall on the other half."""
    out_dir = out or Path("eval-out") / "tune"
    ranks = _collected(ranks, "--ranks", dataset, url, embedded, api_key, data_dir, conversations,
                       out_dir / "channel-ranks.jsonl", tuning.collect)
    try:
        cv = tuning.cross_validate(tuning.load_ranks(ranks), tuning.weights_of(start), repeats=repeats,
                                   grid=[float(x) for x in grid.split(",")], k=k)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    _save(out_dir / "tune-fusion.json", tuning.results_file(cv, _shown_command()))
    console.print(f"R@{k} out-of-sample (mean of {len(cv['folds'])} folds): {cv['out_of_sample']:.3f}; in-sample "
                  f"{cv['in_sample_folds']:.3f}; agreed weights {cv['agreed']}")
    console.print(f"wrote {out_dir / 'tune-fusion.json'} (copy it to benchmarks/results/ to render it in the docs)")


@eval_app.command("abstention")
def abstention(
    dataset: FoldDatasetOpt = None,
    url: UrlOpt = None,
    embedded: EmbeddedOpt = False,
    api_key: ApiKeyOpt = None,
    conversations: ConvOpt = None,
    out: OutOpt = None,
    data_dir: DataDirOpt = None,
    evidence: Annotated[Path | None, typer.Option(
        "--evidence", help="An evidence.jsonl from an earlier run: choose floors offline, no service needed.")] = None,
    repeats: RepeatsOpt = 5,
    max_false: Annotated[float, typer.Option(
        "--max-false", min=0.0, max=1.0, help="Most false abstention allowed on the tuning half.")] = MAX_FALSE,
) -> None:
    """Abstention floors of /v1/context by conversation folds: LoCoMo questions in their own cube (answerable) and
    in another conversation's (unanswerable); floors chosen on half the conversations, reported on the other."""
    out_dir = out or Path("eval-out") / "abstention"
    evidence = _collected(evidence, "--evidence", dataset, url, embedded, api_key, data_dir, conversations,
                          out_dir / "evidence.jsonl", abstention_eval.collect)
    try:
        cv = abstention_eval.cross_validate(abstention_eval.load_evidence(evidence), repeats=repeats,
                                            max_false=max_false)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    _save(out_dir / "abstention.json", abstention_eval.results_file(cv, _shown_command()))
    oos = cv["out_of_sample"]
    console.print(f"out-of-sample (mean of {len(cv['folds'])} folds): false abstention {oos['own']:.3f}, correct "
                  f"abstention {oos['foreign']:.3f}; agreed floors {cv['agreed']['cosine_floor']:g} / "
                  f"{cv['agreed']['overlap_floor']:g}")
    console.print(f"wrote {out_dir / 'abstention.json'} (copy it to benchmarks/results/ to render it in the docs)")


def main() -> None:
    """The ``memcubed-eval`` console script."""
    eval_app()
