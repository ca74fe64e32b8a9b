"""The transaction runner shared by every write, with idempotent replay."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Conflict
from app.models.base import utcnow
from app.principal import Principal
from app.repositories import audit
from app.schemas.admin import ShownOnce

T = TypeVar("T", bound=BaseModel)

UNIQUE_VIOLATION = "23505"  # SQLSTATE
RETRYABLE = {"40P01", "40001"}  # deadlock detected, serialization failure
DEADLOCK_RETRIES = 3


@dataclass(frozen=True)
class Idempotency:
    """An ``Idempotency-Key`` and a hash of the request it came with."""

    key: str
    request_hash: str

    @staticmethod
    def of(key: str | None, *parts: Any) -> Idempotency | None:
        if not key:
            return None
        body = json.dumps(parts, sort_keys=True, default=str).encode()
        return Idempotency(key, hashlib.sha256(body).hexdigest())


@dataclass
class Tx:
    """An open transaction plus work to do only once it has committed (e.g. index updates)."""

    session: Session
    after_commit: list[Callable[[], None]] = field(default_factory=list)


class Transactor:
    def __init__(self, sessions: sessionmaker[Session], idempotency_ttl: timedelta = timedelta(hours=24)) -> None:
        self.sessions = sessions
        self.idempotency_ttl = idempotency_ttl

    def run(self, principal: Principal, idem: Idempotency | None, model: type[T], work: Callable[[Tx], T]) -> T:
        """Run ``work`` in one transaction; with an idempotency key, a retry replays the first result.

        Racing retries are serialised on the key (an advisory lock), so the later one replays the first
        one's result; should two still collide, the loser's commit hits the unique key on the record and
        rolls back whole, then replays the winner's result. Nothing is written twice. A unique violation
        that is not a retry (e.g. two concurrent creates of one cube name) is a conflict, not a 500.
        """
        replays = deadlocks = 0
        while True:
            try:
                tx = Tx(self.sessions())
                with tx.session, tx.session.begin():
                    result = self._run_once(tx, principal, idem, model, work)
            except IntegrityError as exc:
                if getattr(exc.orig, "sqlstate", None) != UNIQUE_VIOLATION:
                    raise
                if idem is None or replays:
                    raise Conflict("the request conflicts with data written at the same time; "
                                   "read it back or retry") from exc
                replays += 1
                continue
            except OperationalError as exc:
                # Postgres chose this transaction as a deadlock's (or serialisation's) victim and rolled it back
                # whole: the work runs again, a few times, before the caller hears of it.
                if getattr(exc.orig, "sqlstate", None) not in RETRYABLE or deadlocks >= DEADLOCK_RETRIES:
                    raise
                deadlocks += 1
                time.sleep(0.05 * deadlocks)
                continue
            for hook in tx.after_commit:
                hook()
            return result

    def _run_once(self, tx: Tx, principal: Principal, idem: Idempotency | None, model: type[T],
                  work: Callable[[Tx], T]) -> T:
        if idem is None:
            return work(tx)
        audit.lock_idempotency_key(tx.session, principal.key_id, idem.key)
        # Records expire: an expired one is ignored, and purged here a batch at a time (indexed on created_at).
        cutoff = utcnow() - self.idempotency_ttl
        audit.purge_idempotent_results(tx.session, cutoff)
        previous = audit.idempotent_result(tx.session, principal.key_id, idem.key, cutoff)
        if previous is not None:
            if previous.request_hash != idem.request_hash:
                raise Conflict(
                    "Idempotency-Key was already used with a different request",
                    {"idempotency_key": idem.key},
                )
            return model.model_validate(previous.response)
        result = work(tx)
        record = result.replay_record() if isinstance(result, ShownOnce) else result.model_dump(mode="json")
        audit.save_idempotent_result(tx.session, key_id=principal.key_id, idem_key=idem.key,
                                     request_hash=idem.request_hash, response=record)
        return result
