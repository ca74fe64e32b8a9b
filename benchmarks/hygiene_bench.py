"""Memory hygiene trap suite (issue 18): is what an agent gets back right, current and allowed?

Hand-written items in ``benchmarks/data/hygiene/*.jsonl``, five dimensions: ``answerable``, ``unanswerable``,
``changed``, ``entity_confusion`` and ``deletion``. Every item gets its own cube in a fresh tenant; its
conversation is posted to ``POST /v1/cubes/{id}/messages`` exactly as an agent would (one call per list in
``turns``, no waiting between calls); once the cube's enrichment is done (``enrichment_pending == 0``, bounded)
the item's question goes to ``POST /v1/context`` (``budget: "auto"``) and ``POST /v1/search`` (``mode: "fine"``,
``top_k: 10``), and each route is scored on its own. Deletion items are also checked against the cube's active
memory list and its entities, and searched for each forgotten and kept value itself.

    python benchmarks/hygiene_bench.py [--url URL --api-key KEY | --embedded] [--out benchmarks/results/hygiene.json]

Without ``--url`` (or with ``--embedded``) a ``memcubed serve`` subprocess is started over a fresh database on the
local Postgres (the embedded one when none answers) and stopped at the end. Only the public HTTP API is used.
The JSON results hold per item the pass/fail of each route with its reason, per dimension and route the passed
count and rate, the commit, the date and the load average; a Markdown table is written next to them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.search_bench import (  # noqa: E402 - after the path fix, as a script
    _check,
    _client,
    bench_database,
    git_commit,
    machine,
    server_process,
    tenant_key,
)

DATA = ROOT / "benchmarks" / "data" / "hygiene"
DIMENSIONS = ("answerable", "unanswerable", "changed", "entity_confusion", "deletion")
ROUTES = ("context", "search")
DELETION_ROUTES = ("context", "search", "memories", "entities")
GOALS = {"answerable": 0.95, "unanswerable": 0.85, "changed": 0.85, "entity_confusion": 0.85, "deletion": 0.95}
SEARCH_TOP_K = 10

Json = dict[str, Any]
Verdict = dict[str, Any]  # {"pass": bool, "reason": str}


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def load_items(data_dir: Path = DATA) -> list[Json]:
    """Every item of every ``*.jsonl`` file, checked for the fields its dimension needs."""
    need = {"answerable": ("answers",), "unanswerable": ("traps",), "changed": ("current", "old"),
            "entity_confusion": ("answers", "confusers"), "deletion": ("forgotten_values", "kept_values")}
    items: list[Json] = []
    for path in sorted(data_dir.glob("*.jsonl")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            item = json.loads(line)
            where = f"{path.name}:{n}"
            if item.get("dimension") not in need:
                raise ValueError(f"{where}: unknown dimension {item.get('dimension')!r}")
            missing = [k for k in ("id", "turns", "question", *need[item["dimension"]]) if k not in item]
            if missing:
                raise ValueError(f"{where}: missing {missing}")
            if not item["turns"] or not all(call for call in item["turns"]):
                raise ValueError(f"{where}: every call needs at least one turn")
            items.append(item)
    ids = [i["id"] for i in items]
    if len(ids) != len(set(ids)):
        raise ValueError("duplicate item ids")
    return items


# --------------------------------------------------------------------------------------------------
# Scoring: pure functions of an item and the responses (exercised on hand-made responses by the tests)
# --------------------------------------------------------------------------------------------------


def _find(text: str, values: Sequence[str]) -> int | None:
    """The first position in ``text`` (case-insensitive) of any of ``values``; None when none occurs."""
    low = text.lower()
    hits = [p for v in values if (p := low.find(v.lower())) >= 0]
    return min(hits) if hits else None


def _has(text: str, values: Sequence[str]) -> list[str]:
    low = text.lower()
    return [v for v in values if v.lower() in low]


def context_text(ctx: Json) -> str:
    """Everything a context response hands the agent: the assembled text and every item's content."""
    return "\n".join([ctx.get("context") or "", *(str(i.get("content", "")) for i in ctx.get("items") or [])])


def search_texts(search: Json) -> list[str]:
    """The contents of a search response's results, in rank order."""
    return [str(r["memory"]["content"]) for r in search.get("results") or []]


def _first(texts: Sequence[str], values: Sequence[str]) -> tuple[int, int] | None:
    """(rank, position) of the first occurrence of any value in a ranked list of texts."""
    for rank, text in enumerate(texts):
        pos = _find(text, values)
        if pos is not None:
            return rank, pos
    return None


def _ok(reason: str) -> Verdict:
    return {"pass": True, "reason": reason}


def _fail(reason: str) -> Verdict:
    return {"pass": False, "reason": reason}


def score_answerable(item: Json, ctx: Json, search: Json) -> dict[str, Verdict]:
    answers = item["answers"]
    out: dict[str, Verdict] = {}
    if ctx.get("abstained"):
        out["context"] = _fail("abstained")
    else:
        found = _has(context_text(ctx), answers)
        out["context"] = _ok(f"found {found[0]!r}") if found else _fail("no answer in the context")
    hit = _first(search_texts(search), answers)
    out["search"] = _ok(f"answer at rank {hit[0] + 1}") if hit else _fail("no answer in the results")
    return out


def score_unanswerable(item: Json, ctx: Json, search: Json) -> dict[str, Verdict]:
    traps = item["traps"]
    out: dict[str, Verdict] = {}
    for route, body, texts in (("context", ctx, [context_text(ctx)]), ("search", search, search_texts(search))):
        if body.get("abstained"):
            out[route] = _ok("abstained")
            continue
        sprung = _has("\n".join(texts), traps)
        out[route] = _fail(f"trap {sprung[0]!r} returned") if sprung else _ok("no trap returned")
    return out


def score_changed(item: Json, ctx: Json, search: Json) -> dict[str, Verdict]:
    """The current value comes back; the old one is absent, or only in texts ranked after the current one.

    A text holding both values ("not in Boston any more, we're in Denver") presents the current one, so only texts
    with the old value and without the current one count as stale. In search a stale memory ranked below the
    current one must also say what replaced it: ``superseded_by`` (stored at write) or ``newer_statement`` (inferred
    when searching).
    """
    current, old = item["current"], item["old"]
    out: dict[str, Verdict] = {}
    if ctx.get("abstained"):
        out["context"] = _fail("abstained")
    else:
        pieces = [str(i.get("content", "")) for i in ctx.get("items") or []] or [ctx.get("context") or ""]
        out["context"] = _order(pieces, current, old, None)
    results = search.get("results") or []
    out["search"] = _order(search_texts(search), current, old,
                           [r["memory"].get("superseded_by") or r.get("newer_statement") for r in results])
    return out


def _order(texts: Sequence[str], current: Sequence[str], old: Sequence[str],
           superseded: Sequence[Any] | None) -> Verdict:
    cur = next((i for i, t in enumerate(texts) if _has(t, current)), None)
    stale = [i for i, t in enumerate(texts) if _has(t, old) and not _has(t, current)]
    if cur is None:
        return _fail("current value absent" + (" (old value returned)" if stale else ""))
    if not stale:
        return _ok(f"current at {cur + 1}, old absent")
    if stale[0] < cur:
        return _fail(f"old value at {stale[0] + 1} before current at {cur + 1}")
    if superseded is not None and not all(superseded[i] for i in stale):
        return _fail(f"old value at {stale[0] + 1} (after current at {cur + 1}) not marked out of date")
    return _ok(f"current at {cur + 1}, old only after it" + (" and marked superseded" if superseded else ""))


def score_entity_confusion(item: Json, ctx: Json, search: Json) -> dict[str, Verdict]:
    answers, confusers = item["answers"], item["confusers"]
    out: dict[str, Verdict] = {}
    if ctx.get("abstained"):
        out["context"] = _fail("abstained")
    else:
        text = context_text(ctx)
        out["context"] = _before(_find(text, answers), _find(text, confusers))
    texts = search_texts(search)
    out["search"] = _before(_first(texts, answers), _first(texts, confusers))
    return out


def _before(answer: Any, confuser: Any) -> Verdict:
    if answer is None:
        return _fail("no answer returned" + (" (a confuser was)" if confuser is not None else ""))
    if confuser is not None and confuser < answer:
        return _fail(f"confuser first ({confuser} < {answer})")
    return _ok("answer first" if confuser is not None else "answer, no confuser")


def score_deletion(item: Json, probes: Json) -> dict[str, Verdict]:
    """No forgotten value in anything returned; every kept value still found.

    ``probes``: ``context`` (the context for the question), ``kept_context`` (for the kept question, when the item
    keeps values), ``searches`` (search responses for the question, each forgotten value and each kept value, by
    query), ``memories`` (the cube's active memories) and ``entities`` (its entities, None without the route).
    """
    forgotten, kept = item["forgotten_values"], item["kept_values"]
    out: dict[str, Verdict] = {}

    ctx_texts = [context_text(probes["context"])]
    kept_ctx = probes.get("kept_context")
    out["context"] = _clean(ctx_texts + ([context_text(kept_ctx)] if kept_ctx else []), forgotten,
                            [context_text(kept_ctx)] if kept_ctx else [], kept)

    searches: dict[str, Json] = probes["searches"]
    all_results = [t for body in searches.values() for t in search_texts(body)]
    kept_results = [t for v in kept for t in search_texts(searches.get(v, {}))]
    out["search"] = _clean(all_results, forgotten, kept_results, kept)

    memories = [str(m["content"]) for m in probes["memories"]]
    out["memories"] = _clean(memories, forgotten, memories, kept)

    if probes.get("entities") is not None:
        names = [str(e["name"]) for e in probes["entities"]]
        out["entities"] = _clean(names, forgotten, [], [])
    return out


def _clean(texts: Sequence[str], forgotten: Sequence[str], kept_texts: Sequence[str], kept: Sequence[str]) -> Verdict:
    leaked = _has("\n".join(texts), forgotten)
    if leaked:
        return _fail(f"forgotten {leaked[0]!r} returned")
    lost = [v for v in kept if not _has("\n".join(kept_texts), [v])]
    if lost:
        return _fail(f"kept {lost[0]!r} not found")
    return _ok("nothing forgotten returned" + (", kept values found" if kept else ""))


def summarize(results: Sequence[Json]) -> dict[str, dict[str, Json]]:
    """Per dimension and route: passed, total and rate."""
    out: dict[str, dict[str, Json]] = {}
    for dim in DIMENSIONS:
        rows = [r for r in results if r["dimension"] == dim]
        if not rows:
            continue
        out[dim] = {}
        for route in DELETION_ROUTES if dim == "deletion" else ROUTES:
            verdicts = [r["routes"][route] for r in rows if route in r["routes"]]
            if verdicts:
                passed = sum(v["pass"] for v in verdicts)
                out[dim][route] = {"passed": passed, "total": len(verdicts), "rate": round(passed / len(verdicts), 3)}
    return out


def markdown(report: Json) -> str:
    dims = report["dimensions"]
    lines = [f"Hygiene trap suite, {report['date']}, commit `{report['commit'][:10]}`, "
             f"load average {report['loadavg']}, {report['items']} items.", "",
             "| dimension | items | context | search | memory list | entities | goal |",
             "|---|---|---|---|---|---|---|"]
    for dim, routes in dims.items():
        cells = [f"{routes[r]['passed']}/{routes[r]['total']} ({routes[r]['rate']:.0%})" if r in routes else "—"
                 for r in DELETION_ROUTES]
        total = max(v["total"] for v in routes.values())
        lines.append(f"| {dim} | {total} | " + " | ".join(cells) + f" | ≥ {GOALS[dim]:.0%} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Running an item through the API
# --------------------------------------------------------------------------------------------------


def post_conversation(http: httpx.Client, cube_id: str, item: Json) -> list[Json]:
    """Each call of the item as one ``POST /messages``, in order, as an agent would (no waiting between them)."""
    responses = []
    for n, call in enumerate(item["turns"]):
        body = {"session_id": f"{item['id']}-{n + 1}", "user_id": item.get("user_id", "user"), "messages": call}
        responses.append(_check(http.post(f"/v1/cubes/{cube_id}/messages", json=body), f"{item['id']} messages"))
    return responses


def wait_enriched(http: httpx.Client, cube_ids: Sequence[str], timeout_s: float) -> dict[str, bool]:
    """Poll the cubes until their enrichment is done or ``timeout_s`` passed; which ones finished."""
    pending = set(cube_ids)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for cube_id in sorted(pending):
            if not _check(http.get(f"/v1/cubes/{cube_id}"), "get cube")["enrichment_pending"]:
                pending.discard(cube_id)
        if pending:
            time.sleep(1.0)
    return {c: c not in pending for c in cube_ids}


def ask_context(http: httpx.Client, cube_id: str, query: str) -> Json:
    return _check(http.post("/v1/context", json={"query": query, "cube_ids": [cube_id], "budget": "auto"}), "context")


def ask_search(http: httpx.Client, cube_id: str, query: str) -> Json:
    body = {"query": query, "cube_ids": [cube_id], "mode": "fine", "top_k": SEARCH_TOP_K}
    return _check(http.post("/v1/search", json=body), "search")


def active_memories(http: httpx.Client, cube_id: str) -> list[Json]:
    out: list[Json] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"status": "active", "limit": 500, **({"cursor": cursor} if cursor else {})}
        page = _check(http.get(f"/v1/cubes/{cube_id}/memories", params=params), "list memories")
        out += page["memories"]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def entities(http: httpx.Client, cube_id: str) -> list[Json]:
    out: list[Json] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = _check(http.get(f"/v1/cubes/{cube_id}/entities", params=params), "entities")
        out += page["entities"]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def probe(http: httpx.Client, cube_id: str, item: Json, has_entities: bool) -> tuple[dict[str, Verdict], int]:
    """Ask what the item's dimension needs and score it; also how many contexts came from the semantic cache."""
    dim = item["dimension"]
    ctx = ask_context(http, cube_id, item["question"])
    if dim != "deletion":
        search = ask_search(http, cube_id, item["question"])
        scorer = {"answerable": score_answerable, "unanswerable": score_unanswerable, "changed": score_changed,
                  "entity_confusion": score_entity_confusion}[dim]
        return scorer(item, ctx, search), _cached(ctx)
    queries = [item["question"], *item["forgotten_values"], *item["kept_values"]]
    kept_q = item.get("kept_question") or (item["kept_values"][0] if item["kept_values"] else None)
    kept_ctx = ask_context(http, cube_id, kept_q) if kept_q else None
    probes = {
        "context": ctx,
        "kept_context": kept_ctx,
        "searches": {q: ask_search(http, cube_id, q) for q in dict.fromkeys(queries)},
        "memories": active_memories(http, cube_id),
        "entities": entities(http, cube_id) if has_entities else None,
    }
    return score_deletion(item, probes), _cached(ctx) + (_cached(kept_ctx) if kept_ctx else 0)


def _cached(ctx: Json) -> int:
    return int(bool(((ctx.get("routing") or {}).get("cache") or {}).get("hit")))


def run(url: str, api_key: str, items: Sequence[Json], *, enrich_timeout_s: float = 900.0,
        progress: bool = True) -> Json:
    """The whole suite against the server at ``url``: a fresh tenant (when ``api_key`` is an admin key), one cube
    per item; all conversations are posted first, then enrichment is awaited, then every item is asked."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    key = tenant_key(url, api_key)
    results: list[Json] = []
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   disable=not progress)
    with _client(url, key) as http, bar:
        has_entities = "/v1/cubes/{cube_id}/entities" in _check(http.get("/openapi.json"), "openapi")["paths"]
        run_tag = uuid.uuid4().hex[:8]
        cubes: dict[str, str] = {}
        writes: dict[str, list[Json]] = {}
        task = bar.add_task("posting conversations", total=len(items))
        for item in items:
            cube = _check(http.post("/v1/cubes", json={"name": f"hygiene-{run_tag}-{item['id']}"}), "create cube")
            cubes[item["id"]] = str(cube["id"])
            writes[item["id"]] = post_conversation(http, cubes[item["id"]], item)
            bar.advance(task)
        task = bar.add_task("waiting for enrichment", total=None)
        started = time.monotonic()
        enriched = wait_enriched(http, list(cubes.values()), enrich_timeout_s)
        waited = round(time.monotonic() - started, 1)
        bar.update(task, total=1, completed=1)
        task = bar.add_task("asking", total=len(items))
        for item in items:
            cube_id = cubes[item["id"]]
            verdicts, cache_hits = probe(http, cube_id, item, has_entities)
            results.append({
                "id": item["id"], "dimension": item["dimension"], "calls": len(item["turns"]),
                "turns": sum(len(c) for c in item["turns"]), "enriched": enriched[cube_id],
                "forgotten_ids": sum(len(w.get("forgotten") or []) for w in writes[item["id"]]),
                "context_cache_hits": cache_hits, "routes": verdicts,
            })
            bar.advance(task)
    return {"enrichment_wait_s": waited, "not_enriched": sorted(i for i, c in cubes.items() if not enriched[c]),
            "results": results, "dimensions": summarize(results)}


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _server(args: argparse.Namespace) -> Iterator[tuple[str, str, str]]:
    """(url, key, backend): the given server, or a ``memcubed serve`` subprocess stopped at the end."""
    if args.url:
        yield args.url, args.api_key, f"given server {args.url}"
        return
    with contextlib.ExitStack() as stack:
        dburl = stack.enter_context(bench_database(args.pg_admin_url))
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hygiene-bench-")))
        srv = stack.enter_context(server_process(data_dir, dburl))
        yield srv.url, srv.admin_key, ("`memcubed serve` subprocess over " +
                                       ("a fresh database on the local Postgres" if dburl else "the embedded Postgres"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="a running server (with --api-key: an admin key makes a fresh tenant)")
    where.add_argument("--embedded", action="store_true", help="start a memcubed serve subprocess (the default)")
    parser.add_argument("--api-key", default=os.environ.get("MEMCUBED_API_KEY"))
    parser.add_argument("--pg-admin-url", default=os.environ.get("MEMCUBED_BENCH_PG",
                                                                 "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--data", type=Path, default=DATA, help="folder of *.jsonl items")
    parser.add_argument("--dimension", action="append", choices=DIMENSIONS, help="only these (repeatable)")
    parser.add_argument("--per-dimension", type=int, help="only the first N items of each dimension")
    parser.add_argument("--enrich-timeout", type=float, default=900.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "hygiene.json")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.url and not args.api_key:
        parser.error("--url needs --api-key (or MEMCUBED_API_KEY)")

    items = [i for i in load_items(args.data) if not args.dimension or i["dimension"] in args.dimension]
    if args.per_dimension:
        items = [i for d in DIMENSIONS for i in [j for j in items if j["dimension"] == d][: args.per_dimension]]
    with _server(args) as (url, key, backend):
        outcome = run(url, key, items, enrich_timeout_s=args.enrich_timeout, progress=not args.no_progress)
    shown = list(argv if argv is not None else sys.argv[1:])
    if "--api-key" in shown[:-1]:
        shown[shown.index("--api-key") + 1] = "KEY"
    report = {"command": "python benchmarks/hygiene_bench.py " + " ".join(shown),
              "commit": git_commit(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "loadavg": [round(x, 2) for x in os.getloadavg()], "machine": machine(), "backend": backend,
              "items": len(items), "goals": GOALS, **outcome}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    table = markdown(report)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
