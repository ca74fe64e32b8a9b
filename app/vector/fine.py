"""The derived indexes behind fine retrieval, per cube: BM25 (Tantivy) and SPLADE over each memory's
own text and over its session window. Like the FAISS index they are rebuildable from Postgres."""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from app.vector.lexical import LexicalIndex
from app.vector.sparse import SparseIndex
from app.vector.splade import SpladeEncoder

log = logging.getLogger(__name__)
VIEWS = ("plain", "window")


class CubeFine:
    def __init__(self, root: Path, dim: int) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.lexical = LexicalIndex(root / "bm25")
        self.splade: dict[str, SparseIndex] = {}
        for view in VIEWS:
            path = root / f"splade_{view}.npz"
            try:
                self.splade[view] = SparseIndex.load(path, dim) if path.exists() else SparseIndex(dim)
            except (OSError, ValueError) as exc:
                log.warning("unreadable sparse index %s (%s); it will be rebuilt", path, exc)
                self.splade[view] = SparseIndex(dim)

    def ids(self) -> set[int]:
        return self.splade["plain"].ids()

    def flush(self) -> None:
        for view, index in self.splade.items():
            if index.dirty:
                index.save(self.root / f"splade_{view}.npz")


class FineStore:
    def __init__(self, directory: Path, encoder_loader: object) -> None:
        self.directory = directory
        self._load_encoder = encoder_loader
        self._encoder: SpladeEncoder | None = None
        self._cubes: dict[uuid.UUID, CubeFine] = {}
        self._lock = threading.Lock()

    @property
    def encoder(self) -> SpladeEncoder:
        if self._encoder is None:
            self._encoder = self._load_encoder()  # type: ignore[operator]
        assert self._encoder is not None
        return self._encoder

    def cube(self, cube_id: uuid.UUID) -> CubeFine:
        with self._lock:
            found = self._cubes.get(cube_id)
            if found is None:
                found = self._cubes[cube_id] = CubeFine(self.directory / str(cube_id), self.encoder.dim)
            return found

    def known_cubes(self) -> list[uuid.UUID]:
        """Cubes with index files on disk or loaded."""
        on_disk = set()
        if self.directory.exists():
            for path in self.directory.iterdir():
                try:
                    on_disk.add(uuid.UUID(path.name))
                except ValueError:
                    continue
        with self._lock:
            return sorted(on_disk | set(self._cubes))

    def upsert(self, cube_id: uuid.UUID, new: Sequence[tuple[int, str]],
               windows: Sequence[tuple[int, str, str, Sequence[int]]]) -> None:
        """Index new memories' own text, then (re)index windows.

        ``new`` is (vec_id, text); ``windows`` is (vec_id, text, window text, ids in the window). A window's
        SPLADE vector is the element-wise max of its members' vectors: SPLADE max-pools over tokens, so
        this approximates encoding the joined text at no extra model cost.
        """
        cube = self.cube(cube_id)
        if new:
            ids = np.asarray([v for v, _ in new], dtype=np.int64)
            cube.splade["plain"].add(ids, self.encoder.encode([t for _, t in new]))
        if not windows:
            return
        plain = cube.splade["plain"]
        rows = [plain.rows(list(members)).max(axis=0) for _, _, _, members in windows]
        matrix = sp.csr_matrix(sp.vstack(rows), dtype=np.float32)
        cube.splade["window"].add(np.asarray([w[0] for w in windows], dtype=np.int64), matrix)
        cube.lexical.upsert([(vec_id, text, window) for vec_id, text, window, _ in windows])

    def remove(self, cube_id: uuid.UUID, vec_ids: Sequence[int]) -> None:
        if not vec_ids:
            return
        cube = self.cube(cube_id)
        ids = np.asarray(vec_ids, dtype=np.int64)
        for index in cube.splade.values():
            index.remove(ids)
        cube.lexical.remove(list(vec_ids))

    def reset(self, cube_id: uuid.UUID) -> None:
        """Forget a cube's fine indexes (before a rebuild, or when the cube is deleted)."""
        with self._lock:
            self._cubes.pop(cube_id, None)
        shutil.rmtree(self.directory / str(cube_id), ignore_errors=True)

    def flush(self) -> None:
        with self._lock:
            cubes = list(self._cubes.values())
        for cube in cubes:
            cube.flush()
