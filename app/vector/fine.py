"""The derived indexes behind fine retrieval, per cube: BM25 (Tantivy) and SPLADE over each memory's own
text and over its session windows (±1 and ±2 turns), plus a dense index of the ±1 window. Like the FAISS
index of plain memories they are rebuildable from Postgres (by re-enrichment)."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import scipy.sparse as sp

from app.vector.index import CubeIndex
from app.vector.lexical import LexicalIndex
from app.vector.sparse import SparseIndex
from app.vector.splade import SpladeEncoder

log = logging.getLogger(__name__)
SPARSE_VIEWS = ("plain", "window", "window2")


@dataclass(frozen=True)
class Window:
    """A memory in its session context: ``near`` is ±1 turn, ``wide`` ±2 turns (texts and member ids)."""

    vec_id: int
    text: str
    near: str
    near_ids: Sequence[int]
    wide: str
    wide_ids: Sequence[int]


class CubeFine:
    def __init__(self, root: Path, sparse_dim: int, dense_dim: int) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.lexical = LexicalIndex(root / "bm25")
        self.splade: dict[str, SparseIndex] = {}
        for view in SPARSE_VIEWS:
            path = root / f"splade_{view}.npz"
            try:
                self.splade[view] = SparseIndex.load(path, sparse_dim) if path.exists() else SparseIndex(sparse_dim)
            except (OSError, ValueError) as exc:
                log.warning("unreadable sparse index %s (%s); it will be rebuilt", path, exc)
                self.splade[view] = SparseIndex(sparse_dim)
        self.dense_window = self._load_dense(root / "dense_window.faiss", dense_dim)

    @staticmethod
    def _load_dense(path: Path, dim: int) -> CubeIndex:
        if path.exists():
            try:
                return CubeIndex.from_index(faiss.read_index(str(path)))
            except RuntimeError as exc:
                log.warning("unreadable index %s (%s); it will be rebuilt", path, exc)
        return CubeIndex(dim)

    def ids(self) -> set[int]:
        return self.splade["plain"].ids()

    def sizes(self) -> dict[str, int]:
        """Documents per index kind, named like the retrieval channels: BM25, each SPLADE view, the windowed
        dense vectors."""
        splade = {"splade" if view == "plain" else f"splade_{view}": len(index) for view, index in self.splade.items()}
        return {"bm25": self.lexical.count(), **splade, "dense_window": int(self.dense_window.index.ntotal)}

    def flush(self) -> None:
        for view, index in self.splade.items():
            if index.dirty:
                index.save(self.root / f"splade_{view}.npz")
        if self.dense_window.dirty:
            with self.dense_window.lock:
                tmp = self.root / "dense_window.tmp"
                faiss.write_index(self.dense_window.index, str(tmp))
                os.replace(tmp, self.root / "dense_window.faiss")
                self.dense_window.dirty = False


class FineStore:
    def __init__(self, directory: Path, encoder_loader: Callable[[], SpladeEncoder],
                 embed: Callable[[list[str]], np.ndarray], dense_dim: int) -> None:
        self.directory = directory
        self._load_encoder = encoder_loader
        self._encoder: SpladeEncoder | None = None
        self._embed = embed
        self._dense_dim = dense_dim
        self._cubes: dict[uuid.UUID, CubeFine] = {}
        self._lock = threading.Lock()

    @property
    def encoder(self) -> SpladeEncoder:
        if self._encoder is None:
            self._encoder = self._load_encoder()
        return self._encoder

    def cube(self, cube_id: uuid.UUID) -> CubeFine:
        with self._lock:
            found = self._cubes.get(cube_id)
            if found is None:
                found = self._cubes[cube_id] = CubeFine(self.directory / str(cube_id), self.encoder.dim,
                                                        self._dense_dim)
            return found

    def loaded(self) -> list[CubeFine]:
        """The cubes whose fine indexes this process holds now (none is loaded by asking)."""
        with self._lock:
            return list(self._cubes.values())

    def holds(self, cube_id: uuid.UUID) -> bool:
        """Whether the cube has fine indexes here (loaded or on disk): removing from one that has none would
        load the SPLADE model for nothing."""
        with self._lock:
            if cube_id in self._cubes:
                return True
        return (self.directory / str(cube_id)).exists()

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

    def upsert(self, cube_id: uuid.UUID, new: Sequence[tuple[int, str]], windows: Sequence[Window]) -> None:
        """Index new memories' own text, then (re)index the windows they changed.

        A window's SPLADE vector is the element-wise max of its members' vectors: SPLADE max-pools over
        tokens, so this approximates encoding the joined text at no extra model cost.
        """
        cube = self.cube(cube_id)
        if new:
            ids = np.asarray([v for v, _ in new], dtype=np.int64)
            cube.splade["plain"].add(ids, self.encoder.encode([t for _, t in new]))
        if not windows:
            return
        plain = cube.splade["plain"]
        ids = np.asarray([w.vec_id for w in windows], dtype=np.int64)
        for view, members in (("window", [w.near_ids for w in windows]), ("window2", [w.wide_ids for w in windows])):
            rows = [plain.rows(list(m)).max(axis=0) for m in members]
            cube.splade[view].add(ids, sp.csr_matrix(sp.vstack(rows), dtype=np.float32))
        cube.dense_window.add(ids, self._embed([w.near for w in windows]))
        cube.lexical.upsert([(w.vec_id, w.text, w.near, w.wide) for w in windows])

    def remove(self, cube_id: uuid.UUID, vec_ids: Sequence[int]) -> None:
        if not vec_ids:
            return
        cube = self.cube(cube_id)
        ids = np.asarray(vec_ids, dtype=np.int64)
        for index in cube.splade.values():
            index.remove(ids)
        cube.dense_window.remove(ids)
        cube.lexical.remove(list(vec_ids))

    def reset(self, cube_id: uuid.UUID) -> None:
        """Forget a cube's fine indexes (before a rebuild, or when the cube is deleted)."""
        with self._lock:
            cube = self._cubes.pop(cube_id, None)
        if cube is not None:
            with cube.lexical.lock:  # not while a write to it is in flight
                shutil.rmtree(self.directory / str(cube_id), ignore_errors=True)
        else:
            shutil.rmtree(self.directory / str(cube_id), ignore_errors=True)

    def flush(self) -> None:
        with self._lock:
            cubes = list(self._cubes.values())
        for cube in cubes:
            cube.flush()
