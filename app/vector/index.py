"""Per-cube FAISS indexes, derived from Postgres and persisted under the data dir.

One ``IndexIDMap2`` per cube, keyed by the memory's ``vec_id``: exact (``IndexFlatIP``) while the cube is
small, switched to an inverted-file index (``IndexIVFFlat``, nprobe lists scanned) once it passes
``ivf_min_vectors``, because an exact scan reads every vector on every query (154 MB at 100k). Per-cube rather
than one shared index with filtering because (1) a search can only touch the cubes the caller was
authorised for, so another tenant's vectors are unreachable by construction, not by a filter that
could be forgotten; (2) removal is cheap and exact; (3) a cube can be rebuilt, dropped or checked on
its own. Vectors are normalised, so inner product is cosine similarity.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fingerprint:
    """What an index must hold to match Postgres: how many vectors and the sum of their ids."""

    count: int
    id_sum: int


class CubeIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        # Any: faiss's stubs describe the C++ signatures, not the numpy-friendly wrappers we call.
        self.index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.lock = threading.RLock()
        self.dirty = False

    @classmethod
    def from_index(cls, index: faiss.Index) -> CubeIndex:
        cube = cls(index.d)
        cube.index = index
        return cube

    def add(self, ids: np.ndarray, vecs: np.ndarray, replace: bool = True) -> None:
        """``replace`` for ids that may be indexed already (restore, content update): never duplicate them.
        New memories skip it, since removal scans the whole index (O(n) per call)."""
        with self.lock:
            if replace:
                self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
            self.index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids.astype(np.int64))
            self.dirty = True

    def remove(self, ids: np.ndarray) -> None:
        with self.lock:
            self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
            self.dirty = True

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            n = self.index.ntotal
            if n == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
                return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
            params: Any = None
            selector: Any = None
            if allowed is not None:
                # ``selector`` stays referenced here until the search returns; SWIG would not keep it alive.
                selector = faiss.IDSelectorBatch(allowed.astype(np.int64))
                # IVF needs its own parameter type; a filter also widens the scan, since few allowed ids may sit
                # in the nearest lists.
                params = faiss.SearchParametersIVF() if self.is_ivf else faiss.SearchParameters()
                if self.is_ivf:
                    params.nprobe = min(faiss.extract_index_ivf(self.index).nlist, 4 * self._nprobe())
                params.sel = selector
            scores, ids = self.index.search(query.reshape(1, -1), min(k, n), params=params)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def _nprobe(self) -> int:
        return int(faiss.extract_index_ivf(self.index).nprobe)

    @property
    def is_ivf(self) -> bool:
        return isinstance(faiss.downcast_index(self.index), faiss.IndexIVF)

    def to_ivf(self, nprobe: int, seed: int = 0) -> None:
        """Rebuild as IVF over the same vectors and ids. Runs under the cube's lock (a few seconds once, at
        the size threshold), so no write in between is lost."""
        with self.lock:
            n = self.index.ntotal
            ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
            vecs = self.index.index.reconstruct_n(0, n)
            nlist = max(16, int(4 * np.sqrt(n)))
            rng = np.random.default_rng(seed)
            sample = vecs[rng.choice(n, size=min(n, nlist * 40), replace=False)]
            ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            ivf.train(sample)
            ivf.nprobe = nprobe
            # IVF keeps external ids in its lists itself; an IDMap around it would mis-map ids after removals.
            ivf.add_with_ids(vecs, ids)
            self.index = ivf
            self.dirty = True

    def ids(self) -> np.ndarray:
        with self.lock:
            if not self.is_ivf:
                return faiss.vector_to_array(self.index.id_map)
            lists = self.index.invlists
            parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                     for i in range(self.index.nlist) if lists.list_size(i)]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def fingerprint(self) -> Fingerprint:
        with self.lock:
            ids = self.ids()
        return Fingerprint(len(ids), int(ids.sum()) if len(ids) else 0)


class VectorStore:
    """All cube indexes of one process, loaded at start and flushed to disk in the background."""

    def __init__(self, directory: Path, dim: int, model: str, ivf_min_vectors: int = 50_000,
                 nprobe: int = 16) -> None:
        self.directory = directory
        self.dim = dim
        self.model = model
        self.ivf_min_vectors = ivf_min_vectors
        self.nprobe = nprobe
        self._cubes: dict[uuid.UUID, CubeIndex] = {}
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, cube_id: uuid.UUID) -> Path:
        return self.directory / f"{cube_id}.faiss"

    def _meta_path(self) -> Path:
        return self.directory / "index.json"

    def get(self, cube_id: uuid.UUID) -> CubeIndex:
        with self._lock:
            cube = self._cubes.get(cube_id)
            if cube is None:
                cube = self._cubes[cube_id] = CubeIndex(self.dim)
            return cube

    def peek(self, cube_id: uuid.UUID) -> CubeIndex | None:
        with self._lock:
            return self._cubes.get(cube_id)

    def add(self, cube_id: uuid.UUID, ids: Iterable[int], vecs: np.ndarray, replace: bool = True) -> None:
        id_arr = np.fromiter(ids, dtype=np.int64)
        if len(id_arr):
            self.get(cube_id).add(id_arr, vecs, replace)

    def remove(self, cube_id: uuid.UUID, ids: Iterable[int]) -> None:
        id_arr = np.fromiter(ids, dtype=np.int64)
        cube = self.peek(cube_id)
        if cube is not None and len(id_arr):
            cube.remove(id_arr)

    def drop(self, cube_id: uuid.UUID) -> None:
        with self._lock:
            self._cubes.pop(cube_id, None)
        self._path(cube_id).unlink(missing_ok=True)

    def replace(self, cube_id: uuid.UUID, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Swap in a freshly built index for a cube (used by rebuilds)."""
        fresh = CubeIndex(self.dim)
        if len(ids):
            fresh.index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids.astype(np.int64))
        fresh.dirty = True
        with self._lock:
            self._cubes[cube_id] = fresh

    def load_all(self) -> None:
        """Read every persisted index; a file that does not parse is left out and rebuilt later."""
        meta = self._read_meta()
        if meta and (meta.get("model") != self.model or meta.get("dim") != self.dim):
            log.warning("index files were built for %s/%s; discarding them", meta.get("model"), meta.get("dim"))
            for path in self.directory.glob("*.faiss"):
                path.unlink()
            return
        for path in self.directory.glob("*.faiss"):
            try:
                cube_id = uuid.UUID(path.stem)
                index = faiss.read_index(str(path))
            except (ValueError, RuntimeError) as exc:
                log.warning("unreadable index %s (%s); it will be rebuilt", path, exc)
                path.unlink(missing_ok=True)
                continue
            if index.d != self.dim:
                path.unlink(missing_ok=True)
                continue
            with self._lock:
                self._cubes[cube_id] = CubeIndex.from_index(index)

    def cube_ids(self) -> list[uuid.UUID]:
        with self._lock:
            return list(self._cubes)

    def flush(self) -> int:
        """Switch cubes that grew past the threshold to IVF, then write changed indexes atomically (temp file
        + rename). Runs on the flusher thread, so neither step is on a request's path. Returns how many were
        written."""
        written = 0
        for cube_id in self.cube_ids():
            cube = self.peek(cube_id)
            if cube is None:
                continue
            if cube.index.ntotal >= self.ivf_min_vectors and not cube.is_ivf:
                log.info("cube %s has %d vectors: switching its index to IVF", cube_id, cube.index.ntotal)
                cube.to_ivf(self.nprobe)
            if not cube.dirty:
                continue
            with cube.lock:
                tmp = self._path(cube_id).with_suffix(".tmp")
                faiss.write_index(cube.index, str(tmp))
                os.replace(tmp, self._path(cube_id))
                cube.dirty = False
            written += 1
        self._write_meta()
        return written

    def _read_meta(self) -> dict[str, object] | None:
        try:
            data = json.loads(self._meta_path().read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _write_meta(self) -> None:
        tmp = self._meta_path().with_suffix(".tmp")
        tmp.write_text(json.dumps({"model": self.model, "dim": self.dim}))
        os.replace(tmp, self._meta_path())


class Flusher:
    """Background thread that persists changed derived indexes every few seconds."""

    def __init__(self, flushes: list[Callable[[], object]], every: float) -> None:
        self._flushes = flushes
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="index-flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def flush(self) -> None:
        for flush in self._flushes:
            flush()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.flush()
            except Exception:  # keep flushing later; the indexes are rebuildable anyway
                log.exception("index flush failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()
