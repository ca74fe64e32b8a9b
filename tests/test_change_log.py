"""The change log: what the triggers number (and what they leave out), and how a follower reads numbers that
commit out of order or never (the two-process behaviour is in tests/test_replicas.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.config import to_psycopg_url
from app.db import make_engine, make_sessions, migrate
from app.repositories.changes import Change
from app.services.changes import ChangeFollower
from tests.conftest import Databases, LiveServer, TenantCtx, pg_sqlalchemy_url, sql


def changes_of(live_server: LiveServer, cube: str, after: int = 0) -> list[tuple[int, str, list[int]]]:
    return [(int(seq), op, list(ids)) for seq, op, ids in sql(
        live_server.settings.database_url or "",
        "SELECT seq, op, vec_ids FROM index_changes WHERE cube_id = %s AND seq > %s ORDER BY seq", (cube, after))]


def vec_id_of(live_server: LiveServer, memory_id: str) -> int:
    [(vec_id,)] = sql(live_server.settings.database_url or "", "SELECT vec_id FROM memories WHERE id = %s",
                      (memory_id,))
    return int(vec_id)


def test_writes_are_numbered_in_their_transaction_and_reads_are_not(live_server: LiveServer, tenant: TenantCtx,
                                                                    cube: str) -> None:
    r = tenant.http.post(f"/v1/cubes/{cube}/memories",
                         json={"memories": [{"content": "Noor waters the ferns on Sundays"},
                                            {"content": "The attic key hangs by the boiler"}]})
    assert r.status_code == 201, r.text
    ids = [m["id"] for m in r.json()["memories"]]
    vec_ids = sorted(vec_id_of(live_server, i) for i in ids)
    logged = changes_of(live_server, cube)
    # One row for the batch (a statement-level trigger), whose number the write answered with.
    assert logged[0][1:] == ("add", vec_ids)
    assert int(r.headers["X-Memcubed-Seq"]) == logged[0][0]
    deadline = time.monotonic() + 60  # enrichment marks both rows: logged as an update of the same memories
    while not any(op == "update" for _, op, _ in changes_of(live_server, cube)) and time.monotonic() < deadline:
        time.sleep(0.1)
    while tenant.http.get(f"/v1/cubes/{cube}").json()["enrichment_pending"] and time.monotonic() < deadline:
        time.sleep(0.1)
    settled = changes_of(live_server, cube)
    assert {tuple(ids) for _, op, ids in settled if op == "update"} <= {tuple(vec_ids), (vec_ids[0],), (vec_ids[1],)}
    last = settled[-1][0]
    # Searches and reads update access counts only: nothing for the indexes, nothing logged, no number.
    r = tenant.http.post("/v1/search", json={"query": "ferns", "cube_ids": [cube]})
    assert r.status_code == 200 and "X-Memcubed-Seq" not in r.headers
    assert tenant.http.get(f"/v1/memories/{ids[0]}").status_code == 200
    assert changes_of(live_server, cube, last) == []
    # An edit, a delete and the cube's deletion are.
    r = tenant.http.patch(f"/v1/memories/{ids[0]}", json={"content": "Noor waters the ferns on Saturdays"})
    assert r.status_code == 200, r.text
    edit = int(r.headers["X-Memcubed-Seq"])
    r = tenant.http.delete(f"/v1/memories/{ids[1]}")
    assert r.status_code == 200, r.text
    delete = int(r.headers["X-Memcubed-Seq"])
    assert delete > edit > last
    assert (delete, "update", [vec_ids[1]]) in changes_of(live_server, cube, last)
    r = tenant.http.delete(f"/v1/cubes/{cube}")
    assert r.status_code in (200, 204), r.text
    assert ("drop", []) in [(op, ids) for _, op, ids in changes_of(live_server, cube, delete)]


@pytest.fixture
def sessions(databases: Databases) -> Iterator[tuple[str, sessionmaker[Session]]]:
    conninfo = databases.create()
    url = to_psycopg_url(pg_sqlalchemy_url(conninfo))
    migrate(url)
    engine = make_engine(url)
    yield conninfo, make_sessions(engine)
    engine.dispose()


def log_one(conn: psycopg.Connection[tuple[int]]) -> int:
    row = conn.execute("INSERT INTO index_changes (tenant_id, cube_id, op) VALUES (%s, %s, 'add') RETURNING seq",
                       (uuid.uuid4(), uuid.uuid4())).fetchone()
    assert row is not None
    return int(row[0])


def test_a_follower_applies_late_commits_and_closes_gaps_only_when_no_one_can_fill_them(
        sessions: tuple[str, sessionmaker[Session]]) -> None:
    conninfo, maker = sessions
    applied: list[int] = []
    follower = ChangeFollower(maker, "unused", 0.5, timedelta(hours=1))
    follower.begin()

    def apply(changes: list[Change]) -> None:
        applied.extend(c.seq for c in changes)

    follower.attach(apply)  # catch_up is driven by hand here, without the thread
    with psycopg.connect(conninfo) as slow, psycopg.connect(conninfo, autocommit=True) as fast:
        held = log_one(slow)  # numbered, not committed yet
        later = log_one(fast)
        assert follower.catch_up() == 1
        assert applied == [later]
        assert follower.covers(later) and not follower.covers(held)
        assert follower.applied_through == held - 1  # the gap may still fill
        assert follower.catch_up() == 0 and follower.applied_through == held - 1  # still open: still a gap
        slow.commit()
        assert follower.catch_up() == 1
        assert applied == [later, held]
        assert follower.applied_through == later
        # A number rolled back leaves a gap for good: closed once no transaction that could hold it is left.
        lost = log_one(slow)
        slow.rollback()
        after = log_one(fast)
        follower.catch_up()
        assert follower.covers(after) and follower.applied_through == lost - 1
        follower.catch_up()
        assert follower.applied_through == after
        assert applied == [later, held, after]
        # A number this process applied itself is not applied again.
        own = log_one(fast)
        follower.mark_applied(own)
        assert follower.catch_up() == 0 and follower.applied_through == own
        # Nor one it is still applying: claimed before its commit, the follower leaves it to this process even
        # once it is visible (applied by both, a new memory would be indexed twice).
        mine = log_one(fast)
        follower.claim([mine])
        assert follower.catch_up() == 0 and applied == [later, held, after] and not follower.covers(mine)
        follower.mark_applied(mine)
        assert follower.covers(mine) and follower.applied_through == mine
    assert follower.wait_for(mine, 0.01) and not follower.wait_for(mine + 1, 0.05)
