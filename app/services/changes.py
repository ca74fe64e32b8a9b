"""Following the change log: every process keeps its derived indexes in step with Postgres.

Triggers number every write that changes what an index holds (``index_changes``, migration 0008) in the
writing transaction. Each process runs one ``ChangeFollower`` thread: it LISTENs for a wake-up and, whether or
not one arrives, reads the log every ``change_poll_seconds`` and applies what it has not applied yet. Applying
re-reads the named memories' current rows (vectors, enrichment state, session windows), so changes are
idempotent and their order does not matter; nothing depends on a notification arriving.

Sequence numbers are taken before commit, so a lower number can become visible after a higher one (a slow
transaction), and a rolled-back one never does. The follower therefore tracks the gaps below the highest
number it applied, and closes a gap only once every transaction that could still hold it has ended (the
snapshot's xmin has passed the xmax seen when the gap was found). A process applies its own writes itself, at
once (the write paths update ``DerivedIndexes`` after commit, as before): it claims their numbers just before
commit, so the follower never applies them too (it could read them between the commit and the write's own
index update, and a memory would then be indexed twice), and counts them as applied after.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

import numpy as np
import psycopg
from sqlalchemy.orm import Session, sessionmaker

from app.memory.text import indexed_text
from app.models.base import utcnow
from app.repositories import changes as repo
from app.repositories.changes import Change
from app.services.derived import DerivedIndexes
from app.services.enrichment import placed, windows_around
from app.vector.fine import Window

log = logging.getLogger(__name__)

REPLAY = timedelta(seconds=60)
"""At start a process re-applies the last minute of the log: a write that was committing while the process
loaded its indexes is applied either way."""
BATCH = 1000
PRUNE_EVERY_SECONDS = 600.0
MAX_BACKOFF_SECONDS = 10.0


class ChangeFollower:
    def __init__(self, sessions: sessionmaker[Session], database_url: str, poll_seconds: float,
                 retention: timedelta) -> None:
        self._sessions = sessions
        self._url = database_url
        self._poll = poll_seconds
        self._retention = retention
        self._apply: Callable[[list[Change]], None] = lambda _: None
        self._done = 0  # every number up to here is applied, or known never to commit
        self._applied: set[int] = set()  # applied numbers above _done
        self._claimed: set[int] = set()  # this process's own numbers, committing: it applies them itself
        self._horizon: dict[int, int] = {}  # a missing number -> the xmax of the snapshot that first missed it
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memcubed-changes", daemon=True)

    def begin(self) -> None:
        """Where this process starts reading: call before its indexes are loaded from Postgres."""
        with self._sessions() as s:
            self._done = repo.seq_before(s, utcnow() - REPLAY)

    def attach(self, apply: Callable[[list[Change]], None]) -> None:
        """What applies the changes read (the thread's work; also ``catch_up`` called directly)."""
        self._apply = apply

    def start(self, apply: Callable[[list[Change]], None]) -> None:
        self.attach(apply)
        self._thread.start()

    @property
    def applied_through(self) -> int:
        """Every change up to this number is applied here."""
        with self._cond:
            return self._done

    def covers(self, seq: int) -> bool:
        with self._cond:
            return seq <= self._done or seq in self._applied

    def wait_for(self, seq: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: seq <= self._done or seq in self._applied, timeout)

    def claim(self, seqs: Sequence[int]) -> None:
        """Changes this process is committing and will apply itself: the follower leaves them alone."""
        with self._cond:
            self._claimed.update(seqs)

    def release(self, seqs: Sequence[int]) -> None:
        """Claimed changes whose transaction rolled back: they never commit, so nothing is left to apply."""
        with self._cond:
            self._claimed.difference_update(seqs)

    def mark_applied(self, seq: int) -> None:
        """A change this process made and applied itself."""
        with self._cond:
            self._claimed.discard(seq)
            if seq > self._done:
                self._applied.add(seq)
                self._advance()
            self._cond.notify_all()

    def _advance(self) -> None:
        while self._done + 1 in self._applied:
            self._done += 1
            self._applied.discard(self._done)
            self._horizon.pop(self._done, None)

    def catch_up(self) -> int:
        """Read and apply what is new in the log; returns how many changes were applied."""
        total = 0
        while True:
            with self._sessions() as s:
                xmin, _ = repo.snapshot_bounds(s)  # before the read: transactions below it have ended
                with self._cond:
                    after = self._done
                rows = repo.changes_after(s, after, BATCH)
                _, xmax = repo.snapshot_bounds(s)  # after the read: a gap seen now is held below it
            with self._cond:
                new = [c for c in rows if c.seq not in self._applied and c.seq not in self._claimed
                       and c.seq > self._done]
            if new:
                self._apply(new)
            with self._cond:
                self._applied.update(c.seq for c in new)
                top = max(self._applied, default=self._done)
                for seq in range(self._done + 1, top):
                    if seq in self._applied:
                        continue
                    if seq not in self._horizon:
                        self._horizon[seq] = xmax
                    elif xmin >= self._horizon[seq]:  # every transaction that could hold it has ended
                        self._applied.add(seq)
                self._advance()
                self._cond.notify_all()
            total += len(new)
            if len(rows) < BATCH:
                return total

    def _loop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        next_prune = time.monotonic()
        failures = 0  # in a row: the database is down or gone; wait longer each time, log once
        while not self._stop.is_set():
            if conn is None:
                try:
                    conn = repo.listener(self._url)
                except psycopg.Error as exc:
                    if not failures:
                        log.warning("cannot LISTEN for changes (%s); reading the log every %.1f s", exc, self._poll)
            try:
                self.catch_up()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                    with self._sessions.begin() as s:
                        repo.prune(s, utcnow() - self._retention)
                failures = 0
            except Exception:
                if not failures:
                    log.exception("applying the change log failed; trying again until it works")
                failures += 1
            if conn is None or failures:
                self._stop.wait(min(self._poll * 2 ** min(failures, 5), MAX_BACKOFF_SECONDS))
                continue
            try:
                for _ in conn.notifies(timeout=self._poll, stop_after=1):
                    pass
            except psycopg.Error as exc:
                log.warning("change notifications lost (%s); reconnecting, reading the log meanwhile", exc)
                conn.close()
                conn = None
                self._stop.wait(self._poll)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class IndexApplier:
    """Applies changes read from the log to this process's derived indexes, from the rows as they are now.

    The dense index is updated on the follower's thread, so a change counts as applied as soon as its memories
    are searchable. Fine indexes and the graph follow on the enrichment thread (the cube counts those memories
    as pending enrichment meanwhile), one cube's work in order, each step re-reading the rows when it runs."""

    def __init__(self, sessions: sessionmaker[Session], indexes: DerivedIndexes) -> None:
        self.sessions = sessions
        self.indexes = indexes

    def __call__(self, changes: Sequence[Change]) -> None:
        by_cube: dict[uuid.UUID, set[int]] = {}
        for c in changes:
            by_cube.setdefault(c.cube_id, set()).update(c.vec_ids)
        for cube_id, vec_ids in by_cube.items():
            self.cube(cube_id, sorted(vec_ids))

    def cube(self, cube_id: uuid.UUID, vec_ids: list[int]) -> None:
        with self.sessions() as s:
            if not repo.cube_is_live(s, cube_id):
                self.indexes.drop(cube_id)
                return
            states = repo.memory_states(s, cube_id, vec_ids) if vec_ids else []
        active = [m for m in states if m.active]
        vecs = (np.stack([np.frombuffer(m.embedding, dtype=np.float32) for m in active]) if active
                else np.zeros((0, 0), dtype=np.float32))
        self.indexes.apply_dense(cube_id, [m.vec_id for m in active], vecs,
                                 gone=sorted(set(vec_ids) - {m.vec_id for m in active}))
        self.indexes.defer(cube_id, sum(m.enriched for m in active), partial(self.fine, cube_id, vec_ids))

    def fine(self, cube_id: uuid.UUID, vec_ids: list[int]) -> None:
        """The fine indexes' and the graph's part of a change (also a whole cube's rebuild at start)."""
        with self.sessions() as s:
            if not repo.cube_is_live(s, cube_id):
                return  # dropped meanwhile, by the follower
            states = repo.memory_states(s, cube_id, vec_ids)
            enriched = repo.enriched_active(s, cube_id, [m.vec_id for m in states if m.active and m.enriched])
            texts = [(m.vec_id, indexed_text(m.content, m.meta)) for m in enriched]
            windows: dict[int, Window] = {}
            fresh = {m.id for m in enriched}
            for _, ordered, i in placed(s, cube_id, enriched):
                windows.update((w.vec_id, w) for w in windows_around(ordered, i, fresh))
        indexed = {m.vec_id for m in enriched}
        self.indexes.apply_fine(cube_id, [v for v in vec_ids if v not in indexed], texts, list(windows.values()))
