"""The Redis queue (arq) with real ``memcubed worker`` processes: a worker killed in the middle of a job leaves
the job to be retried, with nothing merged twice; API writes during a consolidation lose nothing; a worker
distils an adapter that the API process then generates with."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

import tests.activation.conftest  # noqa: F401  (puts the converted SmolLM2's dir in the workers' environment)
from app.embedded import serve_in_thread
from tests.conftest import Databases, LiveServer, TenantCtx, add_memories, make_settings, new_tenant, search_ids, sql
from tests.parametric.test_distill import FACTS
from tests.workers.helpers import get, patch_content, wait_job, write

REDIS_URL = os.environ.get("MEMCUBED_TEST_REDIS", "redis://127.0.0.1:6379/0")
JOB_TIMEOUT = 4  # arq re-runs a job whose worker vanished after job_timeout + 10 s


def redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


pytestmark = pytest.mark.skipif(not redis_up(), reason=f"no Redis at {REDIS_URL}")


@pytest.fixture(scope="module")
def queued_server(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(databases, Path(tmp_path_factory.mktemp("redis")), redis_url=REDIS_URL,
                             redis_queue=f"memcubed-test-{secrets.token_hex(4)}", schedule_minutes=0,
                             job_timeout_seconds=JOB_TIMEOUT, job_backoff_seconds=0.5)
    with serve_in_thread(settings) as url:
        assert settings.admin_key is not None
        yield LiveServer(url=url, admin_key=settings.admin_key, settings=settings)
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{settings.redis_queue}*"):
        client.delete(key)


class Worker:
    """A ``memcubed worker`` process on the test queue."""

    def __init__(self, server: LiveServer, tmp: Path, step_delay_ms: int) -> None:
        s = server.settings
        env = {**os.environ, "MEMCUBED_DATABASE_URL": str(s.database_url), "MEMCUBED_REDIS_URL": REDIS_URL,
               "MEMCUBED_REDIS_QUEUE": s.redis_queue, "MEMCUBED_DATA_DIR": str(tmp),
               "MEMCUBED_JOB_TIMEOUT_SECONDS": str(JOB_TIMEOUT), "MEMCUBED_JOB_STEP_DELAY_MS": str(step_delay_ms),
               "MEMCUBED_SCHEDULE_MINUTES": "0", "MEMCUBED_JOB_BACKOFF_SECONDS": "0.5"}
        self.log = tmp / f"worker-{secrets.token_hex(3)}.log"
        self._fh = self.log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "worker"],
                                     env=env, stdout=self._fh, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._fh.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if not self._fh.closed:
            self._fh.close()


@pytest.fixture
def tenant_q(queued_server: LiveServer) -> Iterator[TenantCtx]:
    with queued_server.client(queued_server.admin_key) as admin:
        t = new_tenant(queued_server, admin)
    yield t
    t.http.close()


def job_row(server: LiveServer, job_id: str) -> tuple[Any, ...]:
    url = server.settings.database_url
    assert url is not None
    return sql(url, "SELECT status, attempts FROM jobs WHERE id = %s", (job_id,))[0]


def test_a_worker_killed_mid_job_leaves_it_to_be_retried_without_double_merges(
        queued_server: LiveServer, tenant_q: TenantCtx, tmp_path: Path) -> None:
    t = tenant_q
    cube = t.http.post("/v1/cubes", json={"name": "killed"}).json()["id"]
    canon = write(t, cube, "The quarterly report is due on the last Friday")["memories"][0]["id"]
    fillers = [f"Placeholder note {w} about something else entirely" for w in
               ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")]
    dups = [m["id"] for m in write(t, cube, *fillers)["memories"]]
    for d in dups:  # six active exact duplicates of the first memory (edits bypass admission)
        patch_content(t, d, "The quarterly report is due on the last Friday")
    url = queued_server.settings.database_url
    assert url is not None

    first = Worker(queued_server, tmp_path, step_delay_ms=700)
    try:
        r = t.http.post(f"/v1/cubes/{cube}/consolidate", json={"summaries": False})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 90
        merged = 0
        while merged < 2:  # some merges committed, others not yet
            assert time.monotonic() < deadline, first.log.read_text()
            merged = sql(url, "SELECT count(*) FROM audit_log WHERE action = 'memory.merge' "
                              "AND details->>'job_id' = %s", (job_id,))[0][0]
            time.sleep(0.05)
        first.kill()
    finally:
        first.stop()
    status, attempts = job_row(queued_server, job_id)
    assert (status, attempts) == ("running", 1)
    assert merged < len(dups)

    second = Worker(queued_server, tmp_path, step_delay_ms=0)
    try:
        job = wait_job(t.http, job_id, timeout=120)
    finally:
        second.stop()
    assert job["status"] == "done" and job["attempts"] == 2, job
    # Every duplicate was merged exactly once: one version and one audit row each, whichever try did it.
    per_memory = sql(url, "SELECT v.memory_id::text, count(*) FROM memory_versions v JOIN memories m "
                          "ON m.id = v.memory_id WHERE v.reason LIKE 'merged into%%' AND m.cube_id = %s "
                          "GROUP BY v.memory_id", (cube,))
    assert sorted(per_memory) == sorted((d, 1) for d in dups)
    audits = sql(url, "SELECT object_id, count(*) FROM audit_log WHERE action = 'memory.merge' AND tenant_id = %s "
                      "GROUP BY object_id", (t.id,))
    assert sorted(audits) == sorted((d, 1) for d in dups)
    for d in dups:
        m = get(t, d)
        assert m["status"] == "archived" and m["merged_into"] == canon
    # The API's index followed the worker's changes (through the Redis notices).
    deadline = time.monotonic() + 10
    while True:
        hits = search_ids(t, "when is the quarterly report due", [cube], top_k=10)
        if not set(hits) & set(dups) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert canon in hits and not set(hits) & set(dups)


def test_api_writes_during_a_consolidation_lose_nothing(queued_server: LiveServer, tenant_q: TenantCtx,
                                                         tmp_path: Path) -> None:
    t = tenant_q
    cube = t.http.post("/v1/cubes", json={"name": "busy"}).json()["id"]
    base = write(t, cube, *[f"Archive box {i} holds the tax papers of year {2000 + i}" for i in range(12)])
    ids = [m["id"] for m in base["memories"]]
    for d in ids[1:8]:
        patch_content(t, d, "Archive box 0 holds the tax papers of year 2000")
    worker = Worker(queued_server, tmp_path, step_delay_ms=150)
    written: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        job_id = t.http.post(f"/v1/cubes/{cube}/consolidate", json={"summaries": False}).json()["id"]
        wait_job(t.http, job_id, until=("running", "done"))

        def writer(n: int) -> None:
            with httpx.Client(base_url=queued_server.url, headers={"Authorization": f"Bearer {t.key}"},
                              timeout=60) as http:
                for i in range(10):
                    body = {"memories": [{"content": f"Writer {n} fact {i}: the parcel {n * 100 + i} was shipped"}]}
                    r = http.post(f"/v1/cubes/{cube}/memories", json=body)
                    if r.status_code != 201:
                        errors.append(r.text)
                    else:
                        written.extend(r.json()["memories"])

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        job = wait_job(t.http, job_id, timeout=120)
    finally:
        worker.stop()
    assert errors == [] and job["status"] == "done", (errors, job)
    assert len(written) == 30 and all(m["status"] == "active" for m in written)
    for m in written:
        assert get(t, m["id"])["status"] == "active"
        assert m["id"] in search_ids(t, m["content"], [cube], top_k=3)
    assert job["result"]["merged"] == 7


def test_a_worker_process_distils_an_adapter_the_api_generates_with(
        queued_server: LiveServer, tenant_q: TenantCtx, tmp_path: Path) -> None:
    """As in docker-compose: worker and API have their own data dirs and share only the adapter files."""
    t = tenant_q
    cube = t.http.post("/v1/cubes", json={"name": "distilled"}).json()["id"]
    add_memories(t, cube, *FACTS)
    shared = queued_server.settings.adapter_dir
    shared.mkdir(parents=True, exist_ok=True)
    (tmp_path / "adapters").symlink_to(shared, target_is_directory=True)
    worker = Worker(queued_server, tmp_path, step_delay_ms=0)
    try:
        r = t.http.post(f"/v1/cubes/{cube}/adapters/distill", json={"steps": 3, "rank": 2, "name": "w"})
        assert r.status_code == 202, r.text
        job = wait_job(t.http, r.json()["id"], timeout=600)
    finally:
        worker.stop()
    assert job["status"] == "done", (job, worker.log.read_text()[-2000:])
    adapter = t.http.get(f"/v1/adapters/{job['result']['adapter_id']}").json()
    assert (adapter["source"], adapter["rank"], adapter["metrics"]["steps"]) == ("distill", 2, 3)
    g = t.http.post("/v1/generate", json={"prompt": "Tobin Ashgrove lives in", "adapter_ids": [adapter["id"]],
                                          "max_new_tokens": 2})
    assert g.status_code == 200, g.text
    assert g.json()["adapter_ids"] == [adapter["id"]]
