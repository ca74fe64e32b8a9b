"""Per-cube BM25 with Tantivy: a maintained search library that indexes incrementally.

Each memory is one document with three fields: its own text and its session windows (itself with one and
with two turns either side), because a turn like "Yes, last Saturday!" only makes sense with its neighbours.
"""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import tantivy

FIELDS = ("body", "window", "window2")
_TOKEN = re.compile(r"[A-Za-z0-9]+")


def _schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_integer_field("vid", stored=True, indexed=True, fast=True)
    for field in FIELDS:
        sb.add_text_field(field, stored=False, tokenizer_name="en_stem")
    return sb.build()


class LexicalIndex:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.schema = _schema()
        try:
            self.index = tantivy.Index(self.schema, path=str(path))
        except ValueError:
            # Written with another schema (an older version): start empty; the start-up check sees the
            # count disagree with Postgres and re-enriches the cube.
            shutil.rmtree(path)
            path.mkdir(parents=True)
            self.index = tantivy.Index(self.schema, path=str(path))
        self.lock = threading.RLock()

    def upsert(self, docs: list[tuple[int, str, str, str]]) -> None:
        """(vec_id, text, ±1 window, ±2 window); an existing vec_id is replaced."""
        if not docs:
            return
        with self.lock:
            writer = self.index.writer(heap_size=15_000_000, num_threads=1)
            for vec_id, text, window, window2 in docs:
                writer.delete_documents_by_term("vid", vec_id)
                writer.add_document(tantivy.Document(vid=vec_id, body=text, window=window, window2=window2))
            writer.commit()
            writer.wait_merging_threads()
            self.index.reload()

    def remove(self, vec_ids: list[int]) -> None:
        if not vec_ids:
            return
        with self.lock:
            writer = self.index.writer(heap_size=15_000_000, num_threads=1)
            for vec_id in vec_ids:
                writer.delete_documents_by_term("vid", vec_id)
            writer.commit()
            writer.wait_merging_threads()
            self.index.reload()

    def search(self, text: str, field: str, k: int, allowed: set[int] | None = None) -> list[tuple[float, int]]:
        """BM25 over one field; the query is reduced to plain terms so user text can never be query syntax."""
        terms = " ".join(_TOKEN.findall(text))
        if not terms:
            return []
        query = self.index.parse_query(terms, [field])
        fetch = k if allowed is None else max(k * 10, 200)
        with self.lock:
            searcher = self.index.searcher()
            hits = searcher.search(query, fetch).hits
            out = [(float(score), int(searcher.doc(addr)["vid"][0])) for score, addr in hits]
        if allowed is not None:
            out = [h for h in out if h[1] in allowed]
        return out[:k]

    def count(self) -> int:
        with self.lock:
            return int(self.index.searcher().num_docs)

    def drop(self) -> None:
        with self.lock:
            shutil.rmtree(self.path, ignore_errors=True)
