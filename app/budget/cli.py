"""``memcubed router train|show``: train the query router from evaluation logs, inspect what is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console
from rich.table import Table

from app.config import Settings

router_app = typer.Typer(help="Train and inspect the budget-tier router.", no_args_is_help=True)
console = Console()


def _data_dir(data_dir: Path | None) -> Path:
    return data_dir or Settings().data_dir


def print_metrics(metrics: dict[str, dict[str, object]], title: str) -> None:
    """The held-out (or training) comparison as a table: fixed tiers, the policy, the oracle."""
    table = Table("system", "questions", "reward", "mean ms", "mean tokens", "mean LLM calls", title=title)
    for name, m in metrics.items():
        if name.startswith("combo "):
            continue

        def fmt(value: object, digits: int) -> str:
            return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

        table.add_row(name, str(m["questions"]), fmt(m["reward"], 3), fmt(m["mean_ms"], 1),
                      fmt(m["mean_tokens"], 0), fmt(m["mean_llm_calls"], 2))
    console.print(table)


@router_app.command("train")
def train_command(
    results: Annotated[Path, typer.Option("--from", exists=True, dir_okay=False,
                                          help="Routing log (JSONL) written by `memcubed-eval locomo --budgets`.")],
    lam: Annotated[float, typer.Option("--lambda", min=0.0, help="Cost weight: reward - λ·normalised cost.")] = 0.1,
    reward: Annotated[str, typer.Option("--reward", help="recall | context_recall | judge")] = "recall",
    train_conversations: Annotated[str | None, typer.Option(
        "--train-conversations", help="Comma-separated ids to train on (default: first 60 % by id); "
        "the others are held out.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data directory (MEMCUBED_DATA_DIR).")] = None,
    lambda_sweep: Annotated[str | None, typer.Option(
        "--lambda-sweep", help="Comma-separated λ values to also evaluate the policy at on the held-out "
        "conversations (metrics and per-question picks go into the policy header).")] = None,
) -> None:
    """Fit the router on some conversations, report on the others, write {data_dir}/router/policy-vN."""
    from app.budget.train import REWARDS, Reward, train

    if reward not in REWARDS:
        raise typer.BadParameter(f"--reward must be one of {', '.join(REWARDS)}")
    ids = [c.strip() for c in train_conversations.split(",") if c.strip()] if train_conversations else None
    try:
        lams = [float(v) for v in lambda_sweep.split(",") if v.strip()] if lambda_sweep else []
    except ValueError as exc:
        raise typer.BadParameter(f"--lambda-sweep must be comma-separated numbers, not {lambda_sweep!r}") from exc
    try:
        trained = train(results, _data_dir(data_dir), lam, cast(Reward, reward), ids, lams)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    h = trained.header
    console.print(f"policy v{trained.version} (λ={lam:g}, reward {reward}) → {trained.model_path}", soft_wrap=True)
    console.print(f"trained on {', '.join(h['train_conversations'])} ({h['train_questions']} questions); "
                  f"held out {', '.join(h['held_out_conversations']) or 'none'} ({h['held_out_questions']})",
                  soft_wrap=True)
    if h["metrics"]["held_out"]:
        print_metrics(h["metrics"]["held_out"], "held-out conversations")


@router_app.command("show")
def show_command(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data directory (MEMCUBED_DATA_DIR).")] = None,
) -> None:
    """Which policy the service would load now, and its held-out figures."""
    from app.budget.policy import LearnedPolicy, load_policy

    policy, warnings = load_policy(_data_dir(data_dir))
    for w in warnings:
        console.print(f"[yellow]warning:[/yellow] {w}", soft_wrap=True)
    if not isinstance(policy, LearnedPolicy):
        console.print("no trained policy: the documented rules decide (app/budget/policy.py)")
        return
    console.print(f"policy v{policy.version}, λ={policy.lam:g}, trained on "
                  f"{', '.join(policy.header['train_conversations'])}", soft_wrap=True)
    if policy.header.get("metrics", {}).get("held_out"):
        print_metrics(policy.header["metrics"]["held_out"], "held-out conversations")
