"""Loaders for LoCoMo and LongMemEval into one shape, so one runner and one set of metrics serve both.

Both benchmarks are conversations made of dated sessions of turns, plus questions whose gold
evidence points at turns (LoCoMo ``dia_id``, LongMemEval ``has_answer``) and sessions. Everything
downstream (ingest, baselines, metrics) only sees the dataclasses defined here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

DatasetName = Literal["locomo", "longmemeval"]

# Upstream meaning of LoCoMo's numeric categories (snap-research/locomo, task_eval/evaluation.py).
LOCOMO_CATEGORIES: dict[int, str] = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}
# The headline excludes adversarial questions: their gold answer is "not in the conversation".
LOCOMO_HEADLINE_CATEGORIES = frozenset({1, 2, 3, 4})

LONGMEMEVAL_TYPES = (
    "single-session-user",
    "single-session-assistant",
    "single-session-preference",
    "multi-session",
    "temporal-reasoning",
    "knowledge-update",
)
LONGMEMEVAL_ABSTENTION = "abstention"

LOCOMO_DATE_FORMAT = "%I:%M %p on %d %B, %Y"  # "1:56 pm on 8 May, 2023"
LONGMEMEVAL_DATE_FORMAT = "%Y/%m/%d (%a) %H:%M"  # "2023/05/30 (Tue) 23:40"

# LoCoMo ships image captions, not images. The caption is part of what a speaker "said", so it is
# appended to the turn text in the form the Mem0/MemOS-style LoCoMo scripts index it
# (upstream LoCoMo's own RAG code writes ``... and shared <caption>``; same information).
CAPTION_TEMPLATE = "{text} [shares {caption}]"

_EVIDENCE_ID = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)")


class DatasetFormatError(ValueError):
    """The file is not in the format the loader expects; the message says what and where."""


@dataclass(frozen=True)
class Turn:
    """One utterance; ``id`` is the dataset's own id so rankings can be scored against gold evidence."""

    id: str
    session_id: str
    speaker: str
    text: str
    occurred_at: datetime
    position: int  # 0-based chronological position in the whole conversation

    @property
    def content(self) -> str:
        """The memory content every system indexes: identical text for memcubed and the baselines."""
        return f"{self.speaker}: {self.text}"


@dataclass(frozen=True)
class Session:
    """A dated block of turns; its id is used for session-level recall."""

    id: str
    date: datetime
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Question:
    """A question with its gold answer and evidence, already resolved to turn and session ids."""

    id: str
    conversation_id: str
    question: str
    answer: str
    category: str
    headline: bool  # counted in the headline figures (LoCoMo 1-4; LongMemEval non-abstention)
    evidence: tuple[str, ...]  # turn ids that exist in the conversation
    evidence_sessions: tuple[str, ...]
    abstention: bool = False
    category_code: int | None = None
    adversarial_answer: str | None = None
    question_date: datetime | None = None
    raw_evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conversation:
    """The unit that gets one cube: a history of sessions and the questions asked about it."""

    id: str
    speakers: tuple[str, ...]
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...]

    @property
    def turns(self) -> list[Turn]:
        """All turns in chronological order."""
        return [t for s in self.sessions for t in s.turns]

    def turn_map(self) -> dict[str, Turn]:
        """Turn id -> turn, to rebuild contexts from ranked ids."""
        return {t.id: t for t in self.turns}


@dataclass
class EvidenceStats:
    """How gold evidence ids were resolved, so malformed annotations are counted rather than hidden."""

    total: int = 0
    exact: int = 0
    repaired: int = 0  # malformed entries from which at least one existing turn id was recovered
    unresolved: list[dict[str, str]] = field(default_factory=list)  # entries that give no turn
    questions_without_evidence: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain form for results.json."""
        return {
            "total": self.total,
            "exact": self.exact,
            "repaired": self.repaired,
            "unresolved": len(self.unresolved),
            "unresolved_entries": self.unresolved,
            "questions_without_evidence": self.questions_without_evidence,
        }


@dataclass
class Dataset:
    """A loaded benchmark with the provenance the report needs (path, sha256)."""

    name: DatasetName
    path: Path
    sha256: str
    conversations: list[Conversation]
    evidence_stats: EvidenceStats

    @property
    def questions(self) -> list[Question]:
        """Every question of every conversation."""
        return [q for c in self.conversations for q in c.questions]

    def select(self, ids: Sequence[str] | None) -> Dataset:
        """Keep only the named conversations (LoCoMo sample ids / LongMemEval question ids)."""
        if not ids:
            return self
        known = {c.id for c in self.conversations}
        missing = [i for i in ids if i not in known]
        if missing:
            raise DatasetFormatError(
                f"unknown conversation id(s) {', '.join(missing)}; known: {', '.join(sorted(known)[:20])}"
            )
        wanted = set(ids)
        convs = [c for c in self.conversations if c.id in wanted]
        return Dataset(self.name, self.path, self.sha256, convs, self.evidence_stats)


def sha256_file(path: Path) -> str:
    """Digest recorded in the report so a number can be tied to the exact file it came from."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_json(path: Path, what: str, hint: str) -> Any:
    if not path.is_file():
        raise DatasetFormatError(f"{path}: no such file ({what} expected)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(
            f"{path}: not a single JSON document ({exc.msg} at line {exc.lineno}); {hint}"
        ) from exc


# --------------------------------------------------------------------------------------------------
# LoCoMo


def parse_locomo_date(value: str) -> datetime:
    """LoCoMo session dates carry no zone; they are read as UTC, as the MemOS/Mem0 scripts do."""
    try:
        return datetime.strptime(value.strip(), LOCOMO_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise DatasetFormatError(f"unparseable LoCoMo session date {value!r}") from exc


def resolve_evidence(raw: Iterable[str], turn_ids: set[str], question_id: str, stats: EvidenceStats) -> list[str]:
    """Map raw evidence entries to existing turn ids, repairing malformed ones where possible.

    Handles the shapes found in locomo10.json: several ids in one string (``D8:6; D9:17``,
    ``D9:1 D4:4``), a stray colon (``D:11:26``) and zero padding (``D30:05``). Entries that yield
    no existing turn (``D``, ids of turns that do not exist) are recorded as unresolved.
    """
    out: list[str] = []
    for entry in raw:
        entry = str(entry)
        stats.total += 1
        if entry in turn_ids:
            stats.exact += 1
            found = [entry]
        else:
            candidates = [f"D{int(a)}:{int(b)}" for a, b in _EVIDENCE_ID.findall(entry)]
            found = [c for c in candidates if c in turn_ids]
            if found:
                stats.repaired += 1
            else:
                reason = "no turn with this id" if candidates else "no turn id in entry"
                stats.unresolved.append({"question": question_id, "entry": entry, "reason": reason})
        for f in found:
            if f not in out:
                out.append(f)
    return out


def _locomo_session_numbers(conv: dict[str, Any]) -> list[int]:
    nums = []
    for key, value in conv.items():
        m = re.fullmatch(r"session_(\d+)", key)
        if m and isinstance(value, list):
            nums.append(int(m.group(1)))
    return sorted(nums)


def load_locomo(path: Path | str) -> Dataset:
    """Load ``locomo10.json`` (the official list of 10 samples) into the common shape."""
    path = Path(path)
    hint = "expected the official LoCoMo locomo10.json (a JSON list of samples)"
    data = _read_json(path, "LoCoMo JSON", hint)
    if not isinstance(data, list) or not data:
        raise DatasetFormatError(f"{path}: top level is {type(data).__name__}; {hint}")
    stats = EvidenceStats()
    conversations = []
    for i, sample in enumerate(data):
        where = f"{path}: sample {i}"
        if not isinstance(sample, dict) or not {"sample_id", "conversation", "qa"} <= sample.keys():
            raise DatasetFormatError(f"{where}: needs keys sample_id, conversation, qa; {hint}")
        sid = str(sample["sample_id"])
        conv = sample["conversation"]
        speakers = tuple(str(conv[k]) for k in ("speaker_a", "speaker_b") if k in conv)
        sessions: list[Session] = []
        position = 0
        for n in _locomo_session_numbers(conv):
            date_key = f"session_{n}_date_time"
            if date_key not in conv:
                raise DatasetFormatError(f"{where} ({sid}): session_{n} has no {date_key}")
            date = parse_locomo_date(str(conv[date_key]))
            turns = []
            for t in conv[f"session_{n}"]:
                try:
                    text = str(t["text"])
                    if t.get("blip_caption"):
                        text = CAPTION_TEMPLATE.format(text=text, caption=t["blip_caption"])
                    turns.append(
                        Turn(
                            id=str(t["dia_id"]),
                            session_id=f"session_{n}",
                            speaker=str(t["speaker"]),
                            text=text,
                            occurred_at=date,
                            position=position,
                        )
                    )
                except (KeyError, TypeError) as exc:
                    raise DatasetFormatError(f"{where} ({sid}) session_{n}: turn lacks {exc}") from exc
                position += 1
            sessions.append(Session(id=f"session_{n}", date=date, turns=tuple(turns)))
        turn_to_session = {t.id: s.id for s in sessions for t in s.turns}
        questions = []
        for j, qa in enumerate(sample["qa"]):
            qid = f"{sid}/q{j}"
            try:
                code = int(qa["category"])
                category = LOCOMO_CATEGORIES[code]
            except (KeyError, ValueError) as exc:
                raise DatasetFormatError(f"{where} ({sid}) qa {j}: bad or missing category") from exc
            raw = tuple(str(e) for e in qa.get("evidence", []))
            evidence = resolve_evidence(raw, set(turn_to_session), qid, stats)
            if not evidence:
                stats.questions_without_evidence += 1
            answer = qa.get("answer")
            adversarial = qa.get("adversarial_answer")
            questions.append(
                Question(
                    id=qid,
                    conversation_id=sid,
                    question=str(qa["question"]),
                    answer="" if answer is None else str(answer),
                    category=category,
                    category_code=code,
                    headline=code in LOCOMO_HEADLINE_CATEGORIES,
                    evidence=tuple(evidence),
                    evidence_sessions=tuple(dict.fromkeys(turn_to_session[e] for e in evidence)),
                    abstention=code == 5,
                    adversarial_answer=None if adversarial is None else str(adversarial),
                    raw_evidence=raw,
                )
            )
        conversations.append(Conversation(sid, speakers, tuple(sessions), tuple(questions)))
    return Dataset("locomo", path, sha256_file(path), conversations, stats)


# --------------------------------------------------------------------------------------------------
# LongMemEval

_LME_HINT = (
    "expected an official LongMemEval file (longmemeval_s.json / longmemeval_m.json / "
    "longmemeval_oracle.json): one JSON list of objects with question_id, question_type, question, "
    "answer, question_date, haystack_session_ids, haystack_dates, haystack_sessions, answer_session_ids"
)
_LME_FIELDS: dict[str, type | tuple[type, ...]] = {
    "question_id": str,
    "question_type": str,
    "question": str,
    "answer": (str, int, float),
    "question_date": str,
    "haystack_session_ids": list,
    "haystack_dates": list,
    "haystack_sessions": list,
    "answer_session_ids": list,
}


def parse_longmemeval_date(value: str) -> datetime:
    """LongMemEval timestamps look like ``2023/05/30 (Tue) 23:40``; read as UTC."""
    try:
        return datetime.strptime(value.strip(), LONGMEMEVAL_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise DatasetFormatError(
            f"unparseable LongMemEval date {value!r} (expected like '2023/05/30 (Tue) 23:40')"
        ) from exc


def _lme_item(path: Path, i: int, item: Any) -> Conversation:
    where = f"{path}: item {i}"
    if not isinstance(item, dict):
        raise DatasetFormatError(f"{where}: is {type(item).__name__}, not an object; {_LME_HINT}")
    for name, typ in _LME_FIELDS.items():
        if name not in item:
            raise DatasetFormatError(f"{where}: missing field {name!r}; {_LME_HINT}")
        if not isinstance(item[name], typ) or isinstance(item[name], bool):
            raise DatasetFormatError(f"{where}: field {name!r} has type {type(item[name]).__name__}")
    qid = item["question_id"]
    where = f"{where} ({qid})"
    qtype = item["question_type"]
    if qtype not in LONGMEMEVAL_TYPES:
        raise DatasetFormatError(f"{where}: unknown question_type {qtype!r}; one of {', '.join(LONGMEMEVAL_TYPES)}")
    ids, dates, sessions_raw = item["haystack_session_ids"], item["haystack_dates"], item["haystack_sessions"]
    if not (len(ids) == len(dates) == len(sessions_raw)):
        raise DatasetFormatError(
            f"{where}: haystack_session_ids ({len(ids)}), haystack_dates ({len(dates)}) and "
            f"haystack_sessions ({len(sessions_raw)}) must have the same length"
        )
    if len(set(ids)) != len(ids):
        raise DatasetFormatError(f"{where}: duplicate ids in haystack_session_ids")
    # _s/_m are sorted by time, _oracle is not: sort so "most recent" means the same everywhere.
    order = sorted(range(len(ids)), key=lambda k: (parse_longmemeval_date(str(dates[k])), k))
    sessions: list[Session] = []
    evidence: list[str] = []
    position = 0
    for k in order:
        sid, date = str(ids[k]), parse_longmemeval_date(str(dates[k]))
        if not isinstance(sessions_raw[k], list):
            raise DatasetFormatError(f"{where}: session {sid!r} is not a list of turns")
        turns = []
        for n, t in enumerate(sessions_raw[k], start=1):
            if (
                not isinstance(t, dict)
                or t.get("role") not in ("user", "assistant")
                or not isinstance(t.get("content"), str)
            ):
                raise DatasetFormatError(
                    f"{where}: session {sid!r} turn {n} must be {{'role': 'user'|'assistant', 'content': str}}"
                )
            tid = f"{sid}:{n}"
            turns.append(Turn(tid, sid, t["role"], t["content"], date, position))
            if t.get("has_answer") is True:
                evidence.append(tid)
            position += 1
        sessions.append(Session(sid, date, tuple(turns)))
    known = {s.id for s in sessions}
    answer_sessions = tuple(str(s) for s in item["answer_session_ids"] if str(s) in known)
    abstention = qid.endswith("_abs")
    question = Question(
        id=qid,
        conversation_id=qid,
        question=item["question"],
        answer=str(item["answer"]),
        category=qtype,
        headline=not abstention,  # official retrieval metrics skip abstention questions
        evidence=tuple(evidence),
        evidence_sessions=answer_sessions,
        abstention=abstention,
        question_date=parse_longmemeval_date(item["question_date"]),
        raw_evidence=tuple(str(s) for s in item["answer_session_ids"]),
    )
    return Conversation(qid, ("user", "assistant"), tuple(sessions), (question,))


def load_longmemeval(path: Path | str) -> Dataset:
    """Load an official LongMemEval JSON file; one conversation (one cube) per question."""
    path = Path(path)
    if path.suffix == ".jsonl":
        raise DatasetFormatError(f"{path}: JSON Lines is a re-shaped copy, not the official format; {_LME_HINT}")
    data = _read_json(path, "LongMemEval JSON", _LME_HINT)
    if not isinstance(data, list) or not data:
        raise DatasetFormatError(f"{path}: top level is {type(data).__name__}, not a non-empty list; {_LME_HINT}")
    stats = EvidenceStats()
    convs = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        conv = _lme_item(path, i, item)
        if conv.id in seen:
            raise DatasetFormatError(f"{path}: item {i}: duplicate question_id {conv.id!r}")
        seen.add(conv.id)
        q = conv.questions[0]
        stats.total += len(q.raw_evidence)
        stats.exact += len(q.evidence_sessions)
        for missing in set(q.raw_evidence) - set(q.evidence_sessions):
            stats.unresolved.append({"question": q.id, "entry": missing, "reason": "session not in haystack"})
        if not q.evidence and not q.evidence_sessions:
            stats.questions_without_evidence += 1
        convs.append(conv)
    return Dataset("longmemeval", path, sha256_file(path), convs, stats)


def load_dataset(name: DatasetName, path: Path | str) -> Dataset:
    """Dispatch by benchmark name."""
    if name == "locomo":
        return load_locomo(path)
    if name == "longmemeval":
        return load_longmemeval(path)
    raise ValueError(f"unknown dataset {name!r}")
