"""Render the benchmark and evaluation figures of README.md and docs/*.md from the results files.

    python benchmarks/render.py           # rewrite every block in place
    python benchmarks/render.py --check   # exit 1, naming the files, when a committed doc differs from its render

A block is the text between ``<!-- render:NAME -->`` and ``<!-- /render -->`` (each on a line of its own);
NAME is a results file, ``benchmarks/results/NAME.json``, and ``<!-- render:NAME#TABLE -->`` renders one of its
tables only. Everything outside the blocks is hand-written prose and is left alone, so a figure lives in one
place (the results file) and the text around it cannot drift from it: ``tests/test_docs_rendered.py`` fails
when a doc differs from its render.

Every results file says how it was made: ``command``, ``commit``, ``date`` and ``load`` (the machine's load
average while it ran), shown above each block; ``source`` says when the figures were transcribed from an older
doc rather than written by the command (the run's own output was not kept). Tables are either in the file
(``tables``: ``{name: {"columns": [...], "rows": [[...]], "formats": [...]}}``, a cell a number or a string,
a format a ``str.format`` pattern per column applied to numbers) or built by a view below from the JSON a
command writes in its own shape. How to add one: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
REQUIRED = ("command", "commit", "date", "load")
BLOCK = re.compile(r"^<!-- render:(?P<name>[\w.-]+)(?:#(?P<table>[\w-]+))? -->\n(?P<body>.*?)^<!-- /render -->$",
                   re.S | re.M)

Json = dict[str, Any]
Table = dict[str, Any]


def docs(root: Path = ROOT) -> list[Path]:
    """The files whose blocks are rendered: the README and every page under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def load(name: str, results: Path = RESULTS) -> Json:
    """A results file, checked for the provenance every rendered figure shows."""
    path = results / f"{name}.json"
    if not path.exists():
        raise ValueError(f"render:{name}: no results file {path}")
    data: Json = json.loads(path.read_text())
    data.setdefault("load", data.get("loadavg"))  # hygiene_bench's name for it
    missing = [k for k in REQUIRED if data.get(k) in (None, "", [])]
    if missing:
        raise ValueError(f"{path.name}: missing {', '.join(missing)}")
    return data


def _load_text(load: Any) -> str:
    if isinstance(load, list):
        return "load average " + " / ".join(f"{x:.2f}" for x in load) + " (1 / 5 / 15 min)"
    if isinstance(load, int | float):
        return f"load average {load:g}"
    return f"load {load}"


def provenance(name: str, data: Json) -> str:
    """The line above a block: what made these figures, where, when, and how busy the machine was."""
    commit = str(data["commit"])
    if re.fullmatch(r"[0-9a-f]{40}(-dirty)?", commit):
        commit = commit[:10] + commit[40:]
    line = (f"*`{data['command']}` · commit `{commit}` · {data['date']} · {_load_text(data['load'])} · "
            f"`benchmarks/results/{name}.json`")
    if data.get("source"):
        line += f" · {data['source']}"
    return line + "*"


def _cell(value: Any, fmt: str | None) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, int | float) and fmt:
        return fmt.format(value)
    return str(value)


def table_markdown(table: Table) -> str:
    columns: list[str] = table["columns"]
    formats: list[str | None] = table.get("formats") or [None] * len(columns)
    align: list[str] = table.get("align") or ["---"] * len(columns)
    def line(cells: list[str]) -> str:
        return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"

    lines = [line(columns), "|" + "|".join(align) + "|"]
    for row in table["rows"]:
        if len(row) != len(columns):
            raise ValueError(f"row {row!r} has {len(row)} cells for {len(columns)} columns")
        lines.append(line([_cell(v, f) for v, f in zip(row, formats, strict=True)]))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Views: tables from the JSON a command writes in its own shape
# --------------------------------------------------------------------------------------------------


def _hygiene(data: Json) -> dict[str, Table]:
    routes = ("context", "search", "memories", "entities")  # hygiene_bench.DELETION_ROUTES
    rows = []
    for dim, per_route in data["dimensions"].items():
        cells = [f"{r['passed']}/{r['total']} ({r['rate']:.0%})" if (r := per_route.get(route)) else "—"
                 for route in routes]
        rows.append([dim, max(v["total"] for v in per_route.values()), *cells, f"≥ {data['goals'][dim]:.0%}"])
    return {"dimensions": {"columns": ["dimension", "items", "context", "search", "memory list", "entities",
                                       "goal"], "rows": rows}}


def _mcp(mcp: Json) -> dict[str, Table]:
    return {"mcp": {"columns": ["benchmark", "result", "goal"], "rows": [[
        f"MCP `recall` vs `POST /v1/context` ({mcp['size']} memories, budget {mcp['budget']}, {mcp['queries']} "
        "queries each, alternating)",
        f"REST p50 {mcp['rest']['p50_ms']:.2f} ms, MCP p50 {mcp['mcp']['p50_ms']:.2f} ms: "
        f"**+{mcp['p50_overhead_ms']:.2f} ms** at p50 "
        f"(p95 {mcp['rest']['p95_ms']:.2f} vs {mcp['mcp']['p95_ms']:.2f} ms)",
        f"≤ {mcp['goal_p50_overhead_ms']:g} ms"]]}}


def _metrics(m: Json) -> dict[str, Table]:
    return {"metrics": {"columns": ["benchmark", "result", "goal"], "rows": [[
        f"fast search with and without metrics ({m['size']:,} memories, {m['queries']} queries each, alternating "
        "on two servers)",
        f"p50 {m['without_metrics']['p50_ms']:.2f} ms without, {m['with_metrics']['p50_ms']:.2f} ms with "
        f"(**{m['p50_overhead_pct']:+.1f} %**); timed in-process the metrics cost **{m['in_process_cost_us']:g} µs** "
        f"a request ({m['in_process_cost_pct_of_p50']:g} % of the p50)",
        f"≤ {m['goal_overhead_pct']:g} %"]]}}


def _merge(m: Json) -> dict[str, Table]:
    return {"merge": {
        "columns": ["memories (both cubes)", "merged in", "admitted / merged", "RSS before", "peak RSS",
                    "merge's share"],
        "rows": [[f"{r['memories']:,}", f"{r['merge_seconds']:.1f} s", f"{r['admitted']:,} / {r['merged']:,}",
                  f"{r['rss_before_merge_mb']:,} MB", f"{r['peak_rss_mb']:,} MB",
                  f"{r['peak_rss_mb'] - r['rss_before_merge_mb']:,} MB"] for r in m["runs"]]}}


def _abuse(a: Json) -> dict[str, Table]:
    def row(label: str, r: Json) -> list[Any]:
        return [label, r["all"]["n"], f"{r['all']['p50_ms']:,.0f} ms", f"{r['all']['p95_ms']:,.0f} ms",
                f"{r['all']['p99_ms']:,.0f} ms", sum(r["errors"].values())]
    return {"abuse": {"columns": ["tenant B", "requests", "p50", "p95", "p99", "errors"],
                      "rows": [row("unloaded", a["unloaded"]), row("under the flood", a["loaded"])]}}


def _replication(r: Json) -> dict[str, Table]:
    def row(label: str, x: Json) -> list[Any]:
        return [label, f"{x['p50_ms']:,.0f} ms", f"{x['p95_ms']:,.0f} ms", f"{x['p99_ms']:,.0f} ms"]
    return {"replication": {"columns": ["", "p50", "p95", "p99"], "rows": [
        row("visible on B after A's acknowledgement (`X-Memcubed-Min-Seq` answered by B)", r["visible_on_b"]),
        row("the write on A itself, for comparison", r["write_on_a"]),
        [f"found on B when searched: {r['found_on_b']} of {r['searched_on_b']}; goal p99 ≤ "
         f"{r['goal']['visible_p99_ms']:g} ms: {'met' if r['goal']['met'] else 'not met'}", "", "", ""]]}}


def _load_bench(lb: Json) -> dict[str, Table]:
    def row(run: Json, phase: str, x: Json) -> list[Any]:
        def ms(op: str, q: str) -> str:
            return f"{s[q]:,.0f} ms" if (s := x["ops"].get(op)) and s["n"] else "—"
        return [run["processes"], phase, x["clients"], x["requests"], f"{x['qps']:,.1f}", ms("fast_search", "p50_ms"),
                ms("fast_search", "p95_ms"), ms("fine_search", "p95_ms"), x["error_count"]]

    def met(g: Json) -> str:
        return "not run at the goal's setting" if g["met"] is None else "met" if g["met"] else "not met"

    rows = []
    for run in lb["runs"]:
        rows.append(row(run, "fast search only", run["fast"]))
        rows += [row(run, "mixed", m) for m in run["mixed"]]
    g = lb["goals"]
    ratio, errs, p95 = g["fast_qps_ratio"], g["mixed_errors"], g["mixed_fast_p95_ms"]
    rows.append([f"goals: fast-search QPS of 2 / 1 processes {ratio['value']} ({ratio['target']}): {met(ratio)}; "
                 f"{errs['clients']} mixed clients on {errs['processes']} processes: {errs['value']} errors "
                 f"({errs['target']}): {met(errs)}, fast p95 {p95['value']} ms ({p95['target']}): {met(p95)}",
                 "", "", "", "", "", "", "", ""])
    return {"load": {"columns": ["processes", "phase", "clients", "requests", "QPS", "fast p50", "fast p95",
                                 "fine p95", "errors"], "rows": rows}}


def _soak(sb: Json) -> dict[str, Table]:
    soak, v, g = sb["soak"], sb["verify"], sb["goals"]
    fast = soak["ops"].get("fast_search") or {}
    return {"soak": {
        "columns": ["processes", "clients", "seconds", "requests", "QPS", "fast p95", "errors",
                    "memories acknowledged", "readable", "searched (each on every process)", "not found", "lost",
                    "goals"],
        "rows": [[sb["processes"], sb["clients"], soak["seconds"], soak["requests"], f"{soak['qps']:,.1f}",
                  f"{fast['p95_ms']:,.0f} ms" if fast.get("n") else "—", soak["error_count"], v["acknowledged"],
                  v["readable"], f"{v['searched']} x {v['processes_searched']}", v["not_found"], g["lost"]["value"],
                  "; ".join(f"{k} {x['value']} ({x['target']}): {'met' if x['met'] else 'not met'}"
                            for k, x in g.items())]]}}


VIEWS: dict[str, Callable[[Json], dict[str, Table]]] = {
    "load_bench": _load_bench,
    "soak_bench": _soak,
    "replication_bench": _replication,
    "abuse_bench": _abuse,
    "abuse_bench-before": _abuse,
    "abuse_bench-ratelimit": _abuse,
    "merge_bench": _merge,
    "hygiene": _hygiene,
    "hygiene-before": _hygiene,
    "hygiene-forget": _hygiene,
    "mcp_bench": _mcp,
    "metrics_bench": _metrics,
}


def tables(name: str, data: Json) -> dict[str, Table]:
    if "tables" in data:
        return dict(data["tables"])
    view = VIEWS.get(name)
    if view is None:
        raise ValueError(f"{name}.json has no 'tables' and render.py has no view for it")
    return view(data)


def render_block(name: str, table: str | None, results: Path = RESULTS) -> str:
    data = load(name, results)
    available = tables(name, data)
    if table is not None and table not in available:
        raise ValueError(f"render:{name}#{table}: the file's tables are {', '.join(available)}")
    chosen = [available[table]] if table else list(available.values())
    return "\n\n".join([provenance(name, data), *(table_markdown(t) for t in chosen)]) + "\n"


def render_text(text: str, results: Path = RESULTS) -> str:
    """The document with every block replaced by its render; the rest byte for byte."""
    def replace(m: re.Match[str]) -> str:
        head = m.group(0).split("\n", 1)[0]
        return f"{head}\n{render_block(m.group('name'), m.group('table'), results)}<!-- /render -->"
    return BLOCK.sub(replace, text)


def used(text: str) -> list[str]:
    """The results files a document's blocks read."""
    return [m.group("name") for m in BLOCK.finditer(text)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say which docs differ from their render")
    args = parser.parse_args(argv)
    stale = []
    for path in docs():
        text = path.read_text()
        rendered = render_text(text)
        if rendered != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(rendered)
    verb = "differ from their render" if args.check else "rendered"
    print(f"{verb}: {', '.join(map(str, stale))}" if stale else "every doc is up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
