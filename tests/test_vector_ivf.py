"""Large cubes switch from exact to IVF search on the flusher thread, and keep every index behaviour."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from app.vector.embedder import load_embedder
from app.vector.index import Fingerprint, VectorStore

WORDS = ["apple", "river", "violin", "marathon", "Berlin", "puppy", "painting", "coffee", "garden", "chess",
         "sunrise", "museum", "guitar", "camping", "bakery", "library", "soccer", "poetry", "harbor", "tulip"]


def sentences() -> list[str]:
    return [f"{a} and {b} on day {i}" for i, (a, b) in
            enumerate((a, b) for a in WORDS for b in WORDS if a != b)][:300]


def test_ivf_switch_keeps_search_filters_removal_and_persistence(tmp_path: Path) -> None:
    embedder = load_embedder("all-MiniLM-L6-v2")
    texts = sentences()
    vecs = embedder.encode(texts)
    store = VectorStore(tmp_path, embedder.dim, embedder.name, ivf_min_vectors=200, nprobe=8)
    cube = uuid.uuid4()
    ids = list(range(1, len(texts) + 1))
    store.add(cube, ids, vecs, replace=False)
    index = store.peek(cube)
    assert index is not None and not index.is_ivf
    exact_top = [int(index.search(vecs[i], 1)[1][0]) for i in range(0, 300, 10)]

    assert store.flush() == 1
    assert index.is_ivf
    assert index.fingerprint() == Fingerprint(300, sum(ids))
    # A stored vector is its own nearest neighbour, under IVF as before.
    assert [int(index.search(vecs[i], 1)[1][0]) for i in range(0, 300, 10)] == exact_top == list(range(1, 301, 10))
    allowed = np.asarray([5, 6, 7], dtype=np.int64)
    assert sorted(index.search(vecs[0], 10, allowed)[1].tolist()) == [5, 6, 7]
    index.remove(np.asarray([11], dtype=np.int64))
    assert 11 not in index.search(vecs[10], 5)[1].tolist()
    store.flush()

    reloaded = VectorStore(tmp_path, embedder.dim, embedder.name, ivf_min_vectors=200, nprobe=8)
    reloaded.load_all()
    again = reloaded.peek(cube)
    assert again is not None and again.is_ivf
    assert again.fingerprint() == Fingerprint(299, sum(ids) - 11)
    assert int(again.search(vecs[20], 1)[1][0]) == 21
