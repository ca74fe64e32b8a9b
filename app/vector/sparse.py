"""Per-cube sparse vector index (SPLADE rows), updated incrementally in segments.

Rows are appended as small column-major segments and merged when there are many, so a write never
rebuilds the cube's matrix and a query touches only the columns of its own terms.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import scipy.sparse as sp

MAX_SEGMENTS = 8


class SparseIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        # Each segment keeps both layouts: columns for scoring a query, rows for reading vectors back.
        self._segments: list[tuple[sp.csc_matrix, sp.csr_matrix, np.ndarray]] = []
        self._live: dict[int, tuple[int, int]] = {}  # vec_id → (segment, row)
        self.lock = threading.RLock()
        self.dirty = False

    def __len__(self) -> int:
        return len(self._live)

    def add(self, ids: np.ndarray, rows: sp.csr_matrix) -> None:
        """Add or replace rows; a replaced id's old row stays in its segment but is no longer live."""
        with self.lock:
            seg = len(self._segments)
            self._segments.append((rows.tocsc(), rows.tocsr(), ids.astype(np.int64)))
            for r, vec_id in enumerate(ids.tolist()):
                self._live[vec_id] = (seg, r)
            if len(self._segments) > MAX_SEGMENTS:
                self._compact()
            self.dirty = True

    def remove(self, ids: np.ndarray) -> None:
        with self.lock:
            for vec_id in ids.tolist():
                self._live.pop(vec_id, None)
            self.dirty = True

    def _merge(self, first: int = 0) -> None:
        """Fold segments ``first..`` into one, dropping rows that are no longer live."""
        keep_ids: list[int] = []
        parts: list[sp.csr_matrix] = []
        for seg, (_, by_row, ids) in enumerate(self._segments[first:], start=first):
            rows = [r for r, vec_id in enumerate(ids.tolist()) if self._live.get(vec_id) == (seg, r)]
            if rows:
                parts.append(by_row[rows])
                keep_ids.extend(int(ids[r]) for r in rows)
        merged = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, self.dim), dtype=np.float32)
        self._segments = [*self._segments[:first], (merged.tocsc(), merged, np.asarray(keep_ids, dtype=np.int64))]
        for r, vec_id in enumerate(keep_ids):
            self._live[vec_id] = (first, r)

    def _compact(self) -> None:
        """Tiered merging: small recent segments fold together; the big one is rewritten only when the
        rest has grown to a quarter of it, so a write costs amortised O(its own rows)."""
        head = self._segments[0][1].shape[0]
        tail = sum(seg[1].shape[0] for seg in self._segments[1:])
        self._merge(0 if tail * 4 >= head else 1)

    def rows(self, ids: list[int]) -> sp.csr_matrix:
        """The stored rows of live ids (an empty row for an unknown id), in the order asked."""
        with self.lock:
            out = []
            for vec_id in ids:
                where = self._live.get(vec_id)
                if where is None:
                    out.append(sp.csr_matrix((1, self.dim), dtype=np.float32))
                else:
                    out.append(self._segments[where[0]][1][where[1]])
            return sp.vstack(out, format="csr") if out else sp.csr_matrix((0, self.dim), dtype=np.float32)

    def search(self, query: sp.csr_matrix, k: int, allowed: set[int] | None = None) -> list[tuple[float, int]]:
        cols = query.indices
        vals = query.data.astype(np.float32)
        if len(cols) == 0 or k <= 0:
            return []
        scored: list[tuple[float, int]] = []
        with self.lock:
            for seg, (matrix, _, ids) in enumerate(self._segments):
                scores = matrix[:, cols] @ vals
                nz = np.flatnonzero(scores > 0)
                taken = 0  # the k best live rows of each segment; the merge below keeps the k best overall
                for r in nz[np.argsort(-scores[nz])].tolist():
                    vec_id = int(ids[r])
                    if self._live.get(vec_id) != (seg, r) or (allowed is not None and vec_id not in allowed):
                        continue
                    scored.append((float(scores[r]), vec_id))
                    taken += 1
                    if taken == k:
                        break
        scored.sort(key=lambda h: -h[0])
        return scored[:k]

    def save(self, path: Path) -> None:
        with self.lock:
            self._merge()
            _, by_row, ids = self._segments[0]
            tmp = path.with_suffix(".tmp.npz")
            sp.save_npz(tmp, by_row, compressed=False)
            np.save(path.with_suffix(".ids.npy"), ids)
            os.replace(tmp, path)
            self.dirty = False

    @classmethod
    def load(cls, path: Path, dim: int) -> SparseIndex:
        index = cls(dim)
        by_row = sp.load_npz(path).tocsr()
        ids = np.load(path.with_suffix(".ids.npy"))
        index._segments = [(by_row.tocsc(), by_row, ids)]
        index._live = {int(v): (0, r) for r, v in enumerate(ids.tolist())}
        return index

    def ids(self) -> set[int]:
        with self.lock:
            return set(self._live)
