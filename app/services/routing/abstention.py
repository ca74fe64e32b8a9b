"""When /v1/context and /v1/answer return nothing: only when the cubes do not fit the budget whole (the full
context shortcut always wins) and no channel finds evidence for the query. One raw cosine is not evidence enough:
short, paraphrased exchanges ("It's Priya Raman, by the way" for "What is the user's name?") sit below any floor
a LoCoMo calibration gives, so the candidates also count when they hold the query's content words (stemmed; all of
them at the default floor) or a name the query asks about. The floors are chosen by conversation folds on LoCoMo
(``memcubed-eval abstention``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.graph.extract import entities, keywords
from app.memory.text import indexed_text
from app.models import Memory
from app.retrieval.unindexed import QUERY_WORDS
from app.schemas.routing import Evidence

CANDIDATES = 10  # the top candidates whose words count


@dataclass(frozen=True)
class Floors:
    cosine: float
    overlap: float


def evidence(query: str, qvec: np.ndarray, mems: Sequence[Memory]) -> Evidence:
    """How strongly the ranked candidates answer the query, by channel."""
    top = list(mems)[:CANDIDATES]
    if not top:
        return Evidence(cosine=-1.0, overlap=0.0, names=None)
    vecs = np.stack([np.frombuffer(m.embedding, dtype=np.float32) for m in top])
    cosine = float(np.max(vecs @ qvec))
    text = " ".join(indexed_text(m.content, m.meta) for m in top)
    asked = set(keywords(query, QUERY_WORDS))
    found = set(keywords(text, 10_000))
    overlap = len(asked & found) / len(asked) if asked else 0.0
    names = entities(query)
    lowered = text.lower()
    named = sum(n.lower() in lowered for n in names) / len(names) if names else None
    return Evidence(cosine=round(cosine, 4), overlap=round(overlap, 4),
                    names=None if named is None else round(named, 4))


def abstain_reason(ev: Evidence, floors: Floors) -> str | None:
    """Why to abstain, or None: every channel must fall short."""
    if ev.cosine >= floors.cosine or ev.overlap >= floors.overlap or (ev.names or 0.0) > 0.0:
        return None
    return (f"rule: abstained (best cosine {ev.cosine:.3f} < {floors.cosine:g}, query words found "
            f"{ev.overlap:.2f} < {floors.overlap:g}, no name of the query found)")
