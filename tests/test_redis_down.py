"""Redis configured but down: the service starts, reads and writes, keeps jobs queued in Postgres, and /readyz
says what is degraded (it used to die at start after five connection retries); once Redis answers, the queued
job is handed to it."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import redis

from app.embedded import serve_in_thread
from tests.conftest import Databases, TenantCtx, make_cube, make_settings, search_ids, sql, wait_enriched


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_service_starts_serves_and_queues_jobs_with_redis_down(databases: Databases, tmp_path: Path) -> None:
    port = closed_port()
    settings = make_settings(databases, tmp_path, redis_url=f"redis://:pw@127.0.0.1:{port}/0")
    with serve_in_thread(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "degraded"
        assert body["checks"] == {"database": True, "index": True, "redis": False}
        assert body["degraded"]["redis"].startswith("unreachable: jobs stay queued in Postgres")
        created = http.post("/v1/tenants", json={"name": "no-redis"},
                            headers={"Authorization": f"Bearer {settings.admin_key}"}).json()
        http.headers["Authorization"] = f"Bearer {created['api_key']}"
        t = TenantCtx(id=created["id"], key=created["api_key"], http=http)
        cube = make_cube(t)
        r = http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": "Ann's cat is called Tom"},
                                                                       {"content": "Ann works at the bakery"}]})
        assert r.status_code == 201, r.text
        written = [m["id"] for m in r.json()["memories"]]
        assert search_ids(t, "What is the name of Ann's cat?", [cube])[0] == written[0]
        wait_enriched(t, cube)  # the in-process enrichment (BM25, entities) runs without Redis too
        for _ in range(2):  # the second search reads the result cache, which is off without Redis
            r = http.post("/v1/search", json={"query": "Where does Ann work?", "cube_ids": [cube], "budget": "low"})
            assert r.status_code == 200 and r.json()["results"][0]["memory"]["id"] == written[1], r.text
        r = http.post(f"/v1/cubes/{cube}/consolidate")
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
        assert sql(settings.database_url or "", "SELECT status FROM jobs WHERE id = %s", (job_id,)) == [("queued",)]
        # Redis comes back: the job is handed to its queue, and /readyz is ready again.
        server = subprocess.Popen(["redis-server", "--port", str(port), "--requirepass", "pw", "--save", "",
                                   "--appendonly", "no"], stdout=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port, password="pw", socket_connect_timeout=1)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (_answers(client) and client.exists(f"arq:job:{job_id}")):
                time.sleep(0.2)
            assert client.exists(f"arq:job:{job_id}") == 1
            ready = http.get("/readyz").json()
            assert (ready["status"], ready["checks"]) == ("ready", {"database": True, "index": True, "redis": True})
        finally:
            server.terminate()
            server.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
