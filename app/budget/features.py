"""Query features the router decides on: cheap, model-free, computed on every request.

Everything here is a few regexes over the query plus two numbers the service already knows about the
cubes (memories, sessions) and whether the semantic cache holds the query. No embedding is needed, so
choosing a tier costs microseconds and never more than the cheapest tier itself.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from app.graph.extract import entities
from app.graph.timeexpr import PATTERNS, Taken, matches

QUESTION_WORDS = ("what", "when", "where", "who", "which", "why", "how", "yes_no", "other")
YES_NO_STARTS = frozenset(
    ("is", "are", "was", "were", "do", "does", "did", "can", "could", "would", "will", "should", "has", "have", "had")
)
# Cues that a question needs more than one memory: conjunctions across facts, counting, comparisons,
# inference ("would X likely ...", LoCoMo's open-domain category) — the categories where fine retrieval
# gains most over dense in the ablation (docs/benchmarks.md).
MULTI_HOP = re.compile(
    r"\b(both|and|in common|how many|how often|times|ever|all the|which of|compare|likely|would|"
    r"might|since|before|after|first|last|between)\b",
    re.I,
)
_WORD = re.compile(r"[\w'\u2019-]+")
MAX_QUERY_CHARS = 8192
# "when" is a time question even without a time expression; "in May 2023" is one without "when".
_TIME_WORDS = re.compile(r"\b(yesterday|today|tomorrow|week|weekend|month|year|ago|date|day|time)\b", re.I)


@dataclass(frozen=True)
class QueryFeatures:
    """What the policy sees about one query."""

    length: int  # words
    question_word: str  # one of QUESTION_WORDS
    time_expressions: int  # time expressions (app.graph.timeexpr patterns) + time words
    entities: int  # named things (app.graph.extract.entities)
    multi_hop: bool  # a multi-fact cue (MULTI_HOP)
    cube_size: int  # memories in the requested cubes
    sessions: int  # distinct sessions in the requested cubes
    cached: bool  # the semantic cache holds this query

    def vector(self) -> list[float]:
        """Numeric form for the learned policy, in FEATURE_NAMES order; sizes are log-scaled."""
        one_hot = [1.0 if self.question_word == w else 0.0 for w in QUESTION_WORDS]
        return [
            float(self.length),
            *one_hot,
            float(self.time_expressions),
            float(self.entities),
            1.0 if self.multi_hop else 0.0,
            math.log1p(self.cube_size),
            math.log1p(self.sessions),
            1.0 if self.cached else 0.0,
        ]

    def as_json(self) -> dict[str, object]:
        return {
            "length": self.length,
            "question_word": self.question_word,
            "time_expressions": self.time_expressions,
            "entities": self.entities,
            "multi_hop": self.multi_hop,
            "cube_size": self.cube_size,
            "sessions": self.sessions,
            "cached": self.cached,
        }


FEATURE_NAMES = (
    "length",
    *(f"qword_{w}" for w in QUESTION_WORDS),
    "time_expressions",
    "entities",
    "multi_hop",
    "log_cube_size",
    "log_sessions",
    "cached",
)


def question_word(query: str) -> str:
    """The wh-word that opens the question (or follows a short preamble), else yes/no or other."""
    words = [w.lower() for w in _WORD.findall(query)]
    for w in words[:4]:
        if w in QUESTION_WORDS[:7]:
            return w
        if w in ("whom", "whose"):
            return "who"
    if words and words[0] in YES_NO_STARTS:
        return "yes_no"
    return "other"


def time_expressions(query: str) -> int:
    """Time expressions in the query, relative ones included (no reference date is needed to count)."""
    taken, count = Taken(len(query)), 0
    for pattern in (*(p for _kind, p in PATTERNS), _TIME_WORDS):
        for m in matches(pattern, query):
            if taken.free(m.start(), m.end()):
                taken.claim(m.start(), m.end())
                count += 1
    return count


def featurize(query: str, cube_size: int, sessions: int, cached: bool) -> QueryFeatures:
    """The features of one query against the cubes it asks (its first MAX_QUERY_CHARS, the API's query limit)."""
    query = query[:MAX_QUERY_CHARS]
    return QueryFeatures(
        length=len(_WORD.findall(query)),
        question_word=question_word(query),
        time_expressions=time_expressions(query),
        entities=len(entities(query)),
        multi_hop=MULTI_HOP.search(query) is not None,
        cube_size=max(0, cube_size),
        sessions=max(0, sessions),
        cached=cached,
    )
