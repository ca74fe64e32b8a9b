"""Two live server processes on one database stay one dataset: the change log carries each one's writes to the
other, by notification or, when that is lost, by its sequence number; a killed process catches up on restart.

The processes are real ``memcubed serve`` subprocesses (own data dirs, own indexes), as replicas behind a load
balancer would be. They are started once for the module; the restart test leaves them running again.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from app.embedded import free_port
from tests.conftest import Databases, Json, assert_error, pg_sqlalchemy_url

BOUND_SECONDS = 1.5
"""How late a write may show on the other process when no notification arrives (poll 0.5 s, plus the load of a
shared CI machine)."""


@dataclass
class ServerProcess:
    database_url: str
    data_dir: Path
    admin_key: str
    port: int = field(default_factory=free_port)
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "MEMCUBED_DATABASE_URL": self.database_url, "MEMCUBED_ADMIN_KEY": self.admin_key,
               "MEMCUBED_RATE_LIMIT_KEY": "1000000/second", "MEMCUBED_RATE_LIMIT_TENANT": "1000000/second",
               "MEMCUBED_MIN_SEQ_WAIT_SECONDS": "1", "MEMCUBED_LOG_LEVEL": "warning"}
        env.pop("MEMCUBED_REDIS_URL", None)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from app.cli import main; main()", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--data-dir", str(self.data_dir), *self.extra],
            env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 300) -> Json:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            try:
                r = httpx.get(f"{self.url}/readyz", timeout=5)
                if r.status_code == 200:
                    return dict(r.json())
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"server on port {self.port} not ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


@dataclass
class Pair:
    a: ServerProcess
    b: ServerProcess
    conninfo: str
    key: str = ""
    cube: str = ""


@pytest.fixture(scope="module")
def pair(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    conninfo = databases.create()
    url = pg_sqlalchemy_url(conninfo)
    admin_key = "mck_test_admin_" + secrets.token_hex(8)
    root = tmp_path_factory.mktemp("replicas")
    a = ServerProcess(url, root / "a", admin_key)
    b = ServerProcess(url, root / "b", admin_key)
    a.start()
    b.start()
    try:
        a.wait_ready()
        b.wait_ready()
        found = Pair(a, b, conninfo)
        with a.client(admin_key) as http:
            r = http.post("/v1/tenants", json={"name": "replicas"})
            assert r.status_code == 201, r.text
            found.key = r.json()["api_key"]
            http.headers["Authorization"] = f"Bearer {found.key}"
            r = http.post("/v1/cubes", json={"name": "shared"})
            assert r.status_code == 201, r.text
            found.cube = r.json()["id"]
        yield found
    finally:
        a.stop()
        b.stop()


SILENT = """CREATE OR REPLACE FUNCTION memcubed_changed(seqs text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF seqs IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('memcubed.seqs',
                       coalesce(nullif(current_setting('memcubed.seqs', true), '') || ',', '') || seqs, true);
    -- NOTIFY
END $$"""
"""The migration's memcubed_changed, without its NOTIFY."""


def write(http: httpx.Client, cube: str, *contents: str) -> tuple[list[str], int]:
    """Memory ids and the change number the write answered with."""
    r = http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": c} for c in contents]})
    assert r.status_code == 201, r.text
    return [m["id"] for m in r.json()["memories"]], int(r.headers["X-Memcubed-Seq"])


def found_ids(http: httpx.Client, cube: str, query: str, min_seq: int | None = None) -> list[str]:
    headers = {"X-Memcubed-Min-Seq": str(min_seq)} if min_seq is not None else {}
    r = http.post("/v1/search", json={"query": query, "cube_ids": [cube], "top_k": 50}, headers=headers)
    assert r.status_code == 200, r.text
    return [h["memory"]["id"] for h in r.json()["results"]]


def visible_within(http: httpx.Client, cube: str, query: str, memory_id: str, bound: float) -> float:
    """Seconds until a search finds the memory; fails past ``bound``."""
    start = time.monotonic()
    while memory_id not in found_ids(http, cube, query):
        assert time.monotonic() - start < bound, f"{memory_id} not visible within {bound}s"
        time.sleep(0.02)
    return time.monotonic() - start


def test_a_write_on_one_process_is_found_on_the_other(pair: Pair) -> None:
    with pair.a.client(pair.key) as a, pair.b.client(pair.key) as b:
        assert a.get("/readyz").json()["process"]["pid"] != b.get("/readyz").json()["process"]["pid"]
        (first,), seq = write(a, pair.cube, "The lighthouse keeper's cat is called Biscuit")
        # Asking for the write's number: the first search on B already sees it.
        assert first in found_ids(b, pair.cube, "what is the cat called?", min_seq=seq)
        assert b.get("/readyz").json()["process"]["applied_through"] >= seq
        # Without it, B still sees the next write promptly (the notification wakes its follower).
        (second,), _ = write(a, pair.cube, "The ferry to Inishmore leaves at 10:30")
        visible_within(b, pair.cube, "when does the ferry leave?", second, BOUND_SECONDS)
        # A delete on B is gone from A's results.
        r = b.delete(f"/v1/memories/{first}")
        assert r.status_code == 200, r.text
        assert first not in found_ids(a, pair.cube, "what is the cat called?", min_seq=int(r.headers["X-Memcubed-Seq"]))
        # A number no process has reached: a bounded wait, then 503 with Retry-After.
        started = time.monotonic()
        r = b.post("/v1/search", json={"query": "cat", "cube_ids": [pair.cube]},
                   headers={"X-Memcubed-Min-Seq": str(seq + 10**9)})
        assert_error(r, 503, "not_caught_up")
        assert r.headers["Retry-After"] == "1"
        assert 1.0 <= time.monotonic() - started < 5
        assert_error(b.get("/v1/cubes", headers={"X-Memcubed-Min-Seq": "soon"}), 422, "invalid_input")


def test_a_lost_notification_heals_by_sequence(pair: Pair) -> None:
    """No NOTIFY at all, and B's listening connection killed: B still applies A's writes, from the log."""
    with psycopg.connect(pair.conninfo, autocommit=True) as conn:
        conn.execute(SILENT)
        killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE application_name = 'memcubed-changes' AND datname = current_database()").fetchone()
        assert killed is not None and killed[0] == 2  # one listener per process
        try:
            with pair.a.client(pair.key) as a, pair.b.client(pair.key) as b:
                for text, query in (("Ines keeps her bicycle in the blue shed", "where is the bicycle kept?"),
                                    ("The spare house key is under the third flowerpot", "where is the spare key?")):
                    (memory_id,), seq = write(a, pair.cube, text)
                    visible_within(b, pair.cube, query, memory_id, BOUND_SECONDS)
                    assert memory_id in found_ids(b, pair.cube, query, min_seq=seq)
        finally:
            conn.execute(SILENT.replace("-- NOTIFY", "PERFORM pg_notify('memcubed_changes', '');"))


def test_a_key_revoked_on_one_process_is_refused_on_the_other(pair: Pair) -> None:
    with pair.a.client(pair.a.admin_key) as admin:
        tenant_id = admin.get("/v1/tenants").json()["tenants"][0]["id"]
        r = admin.post(f"/v1/tenants/{tenant_id}/keys", json={"name": "short-lived"})
        assert r.status_code == 201, r.text
        key, key_id = r.json()["api_key"], r.json()["id"]
        with pair.b.client(key) as b:
            assert b.get("/v1/cubes").status_code == 200
            assert admin.delete(f"/v1/keys/{key_id}").status_code == 200
            start = time.monotonic()
            while (r := b.get("/v1/cubes")).status_code == 200:
                assert time.monotonic() - start < 1.0, "revoked key still accepted after 1 s"
                time.sleep(0.05)
            assert_error(r, 401, "unauthenticated")


def test_a_killed_process_catches_up_and_loses_no_acknowledged_write(pair: Pair) -> None:
    with pair.a.client(pair.key) as a, pair.b.client(pair.key) as b:
        # Acknowledged by B, then B dies at once: no index flush, no clean shutdown.
        on_b, _ = write(b, pair.cube, "Marta's passport expires in March 2031", "The boiler was serviced on May 2nd")
        assert pair.b.proc is not None
        pair.b.proc.kill()
        pair.b.proc.wait(timeout=30)
        # Written on A while B is down.
        on_a, seq = write(a, pair.cube, "The piano tuner comes every second Thursday")
    pair.b.start()
    pair.b.wait_ready()
    with pair.b.client(pair.key) as b:
        assert set(on_b) <= set(found_ids(b, pair.cube, "passport expiry and boiler service", min_seq=seq))
        assert on_a[0] in found_ids(b, pair.cube, "when does the piano tuner come?")
        # And B follows new writes again.
        with pair.a.client(pair.key) as a:
            (later,), _ = write(a, pair.cube, "The cinema club meets on Fridays at eight")
        visible_within(b, pair.cube, "when does the cinema club meet?", later, BOUND_SECONDS)


def test_serve_with_two_workers_answers_from_two_processes(databases: Databases, tmp_path: Path) -> None:
    server = ServerProcess(pg_sqlalchemy_url(databases.create()), tmp_path / "data",
                           "mck_test_admin_" + secrets.token_hex(8), extra=("--workers", "2"))
    server.start()
    try:
        server.wait_ready()
        pids: set[int] = set()
        deadline = time.monotonic() + 120
        while len(pids) < 2 and time.monotonic() < deadline:
            r = httpx.get(f"{server.url}/readyz", timeout=10)  # a new connection each time
            if r.status_code == 200:
                pids.add(r.json()["process"]["pid"])
            else:
                time.sleep(0.2)  # the second process is still loading
        assert len(pids) == 2
        assert server.proc is not None and server.proc.pid not in pids  # the supervisor only supervises
        # Each process keeps index files of its own in the shared data dir.
        with server.client(server.admin_key) as http:
            key = http.post("/v1/tenants", json={"name": "workers"}).json()["api_key"]
            http.headers["Authorization"] = f"Bearer {key}"
            cube = http.post("/v1/cubes", json={"name": "c"}).json()["id"]
            (memory_id,), seq = write(http, cube, "The workshop opens at nine on Saturdays")
        for _ in range(10):  # whichever process answers, with the write's number it finds the memory
            with server.client(key) as http:
                assert memory_id in found_ids(http, cube, "when does the workshop open?", min_seq=seq)
    finally:
        server.stop()
    assert server.proc is None
    assert sorted(p.name for p in (tmp_path / "data" / "processes").iterdir()) == ["0", "1"]
