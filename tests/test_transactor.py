"""The transaction runner retries a deadlock victim: Postgres rolls one of two crossing transactions back whole, and
the work runs again instead of surfacing as a 500 (it did, for a snapshot restore racing enrichment)."""

from __future__ import annotations

import threading
import uuid

from pydantic import BaseModel
from sqlalchemy import text

from app.config import to_psycopg_url
from app.db import make_engine, make_sessions
from app.principal import Principal
from app.services.base import Transactor, Tx
from tests.conftest import LiveServer


class Done(BaseModel):
    order: list[int]


def test_a_deadlock_victim_is_run_again(live_server: LiveServer) -> None:
    engine = make_engine(to_psycopg_url(live_server.settings.database_url or ""))
    tx = Transactor(make_sessions(engine))
    principal = Principal(key_id=uuid.uuid4(), scope="tenant", tenant_id=uuid.uuid4())
    both_hold_one = threading.Barrier(2, timeout=30)
    calls: list[int] = []
    results: dict[int, Done] = {}

    def crossing(first: int, second: int) -> None:
        def work(t: Tx) -> Done:
            calls.append(first)
            t.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 7_000_000 + first})
            if calls.count(first) == 1:  # only the first try waits for the other: the retry must not deadlock
                both_hold_one.wait()
            t.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 7_000_000 + second})
            return Done(order=[first, second])

        results[first] = tx.run(principal, None, Done, work)

    threads = [threading.Thread(target=crossing, args=(1, 2)), threading.Thread(target=crossing, args=(2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    engine.dispose()
    assert results == {1: Done(order=[1, 2]), 2: Done(order=[2, 1])}
    assert len(calls) == 3  # one of the two was the victim and ran twice
