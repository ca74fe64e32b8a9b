"""Keeps the FAISS indexes derived from Postgres: checked at start, rebuilt when they disagree."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.errors import ConfigurationError
from app.repositories import cubes
from app.repositories import graph as graph_repo
from app.repositories import memories as repo
from app.vector.fine import FineStore
from app.vector.index import Fingerprint, VectorStore

log = logging.getLogger(__name__)


@dataclass
class HealReport:
    rebuilt: list[uuid.UUID] = field(default_factory=list)
    dropped: list[uuid.UUID] = field(default_factory=list)


class IndexService:
    def __init__(self, sessions: sessionmaker[Session], vectors: VectorStore, model: str, dim: int) -> None:
        self.sessions = sessions
        self.vectors = vectors
        self.model = model
        self.dim = dim

    def check_embedding_model(self) -> None:
        """Stored vectors from another model or size cannot share an index: refuse to start, loudly."""
        with self.sessions() as s:
            stored = repo.embedding_models(s)
        wrong = [(m, d) for m, d in stored if (m, d) != (self.model, self.dim)]
        if wrong:
            raise ConfigurationError(
                f"memories were embedded with {wrong} but MEMCUBED_EMBEDDING_MODEL is {self.model!r} "
                f"({self.dim}-d); configure the stored model or re-embed the memories before starting",
                {"stored": [{"model": m, "dim": d} for m, d in wrong], "configured": self.model},
            )

    def load_and_heal(self) -> HealReport:
        """Load the persisted indexes and rebuild every cube whose index disagrees with Postgres.

        This is what makes a crash between the Postgres commit and the index write harmless.
        """
        self.check_embedding_model()
        self.vectors.load_all()
        report = HealReport()
        with self.sessions() as s:
            want = repo.index_fingerprints(s)
            live = set(cubes.all_live_cube_ids(s))
            for cube_id in set(want) | set(self.vectors.cube_ids()):
                if cube_id not in live:
                    self.vectors.drop(cube_id)
                    report.dropped.append(cube_id)
                    continue
                index = self.vectors.peek(cube_id)
                have = index.fingerprint() if index is not None else Fingerprint(0, 0)
                if have != Fingerprint(*want.get(cube_id, (0, 0))):
                    self._rebuild(s, cube_id)
                    report.rebuilt.append(cube_id)
        if report.rebuilt or report.dropped:
            log.warning("index healed: rebuilt %d cube(s), dropped %d", len(report.rebuilt), len(report.dropped))
            self.vectors.flush()
        return report

    def heal_fine(self, fine: FineStore) -> tuple[list[uuid.UUID], dict[uuid.UUID, list[int]]]:
        """Check this process's fine indexes against Postgres, without changing Postgres (other processes share
        it). Returns the cubes with memories waiting for enrichment, and the cubes whose fine indexes disagree
        (reset here) with the enriched memories to rebuild them from."""
        stale: dict[uuid.UUID, list[int]] = {}
        with self.sessions() as s:
            live = set(cubes.all_live_cube_ids(s))
            for cube_id in fine.known_cubes():
                if cube_id not in live:
                    fine.reset(cube_id)
            for cube_id, want in graph_repo.enriched_vec_ids(s).items():
                cube = fine.cube(cube_id)
                if cube.ids() != want or cube.lexical.count() != len(want):
                    log.warning("fine index of cube %s disagrees with Postgres; rebuilding it from the rows", cube_id)
                    fine.reset(cube_id)
                    stale[cube_id] = sorted(want)
            return repo.cubes_with_unenriched(s), stale

    def rebuild_all(self) -> HealReport:
        report = HealReport()
        with self.sessions() as s:
            for cube_id in cubes.all_live_cube_ids(s):
                self._rebuild(s, cube_id)
                report.rebuilt.append(cube_id)
        self.vectors.flush()
        return report

    def _rebuild(self, s: Session, cube_id: uuid.UUID) -> None:
        ids: list[int] = []
        vecs: list[np.ndarray] = []
        for vec_id, emb in repo.active_embeddings(s, cube_id):
            ids.append(vec_id)
            vecs.append(np.frombuffer(emb, dtype=np.float32))
        matrix = np.stack(vecs) if vecs else np.zeros((0, self.dim), dtype=np.float32)
        self.vectors.replace(cube_id, np.asarray(ids, dtype=np.int64), matrix)
