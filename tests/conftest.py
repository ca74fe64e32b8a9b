"""Shared fixtures: a real Postgres (local server, or pgserver where none runs), a live server, tenants.

Isolation: each test run gets its own database; each test gets its own tenant, so no test sees another's
rows. Tests that restart the service or break its index get their own database and data dir.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from app.config import Settings
from app.embedded import serve_in_thread

LOCAL_PG = os.environ.get("MEMCUBED_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _admin_url() -> str:
    """The local Postgres on 127.0.0.1:5432 if it answers, else a pgserver started for this run."""
    try:
        with psycopg.connect(LOCAL_PG, connect_timeout=3):
            return LOCAL_PG
    except psycopg.OperationalError:
        import pgserver

        server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="memcubed-pg-")), cleanup_mode="stop")
        return str(server.get_uri())


class Databases:
    """Creates throwaway databases on the test Postgres and drops them at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def create(self) -> str:
        name = f"memcubed_test_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url(name)

    def url(self, name: str) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.admin_url)
        info["dbname"] = name
        return psycopg.conninfo.make_conninfo("", **{k: v for k, v in info.items() if v is not None})

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def databases() -> Iterator[Databases]:
    dbs = Databases(_admin_url())
    yield dbs
    dbs.drop_all()


def pg_sqlalchemy_url(conninfo: str) -> str:
    """psycopg conninfo (key=value) → a postgresql:// URL the service accepts."""
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = info.get("user") or "postgres"
    host = info.get("host") or "127.0.0.1"
    port = info.get("port") or "5432"
    if str(host).startswith("/"):
        return f"postgresql://{user}@/{info['dbname']}?host={host}&port={port}"
    return f"postgresql://{user}@{host}:{port}/{info['dbname']}"


@dataclass
class LiveServer:
    url: str
    admin_key: str
    settings: Settings

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


# Test servers are not rate-limited in practice (tests and the schema fuzzer send bursts), but the limiter still runs;
# tests/test_rate_limits.py sets its own low limits.
UNLIMITED = {"rate_limit_key": "1000000/second", "rate_limit_tenant": "1000000/second"}


def make_settings(databases: Databases, data_dir: Path, **overrides: object) -> Settings:
    return Settings(database_url=pg_sqlalchemy_url(databases.create()), data_dir=data_dir,  # type: ignore[arg-type]
                    admin_key="mck_test_admin_" + secrets.token_hex(8), **{**UNLIMITED, **overrides})


@pytest.fixture(scope="session")
def live_server(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real uvicorn server for the run, on a free port, over real Postgres and the real embedder."""
    settings = make_settings(databases, tmp_path_factory.mktemp("data"))
    with serve_in_thread(settings) as url:
        assert settings.admin_key is not None
        yield LiveServer(url=url, admin_key=settings.admin_key, settings=settings)


@pytest.fixture(scope="session")
def admin(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client(live_server.admin_key) as client:
        yield client


@dataclass
class TenantCtx:
    id: str
    key: str
    http: httpx.Client


def new_tenant(live_server: LiveServer, admin: httpx.Client) -> TenantCtx:
    r = admin.post("/v1/tenants", json={"name": f"t-{uuid.uuid4().hex[:12]}"})
    assert r.status_code == 201, r.text
    body = r.json()
    return TenantCtx(id=body["id"], key=body["api_key"], http=live_server.client(body["api_key"]))


@pytest.fixture
def tenant(live_server: LiveServer, admin: httpx.Client) -> Iterator[TenantCtx]:
    """A fresh tenant per test: the unit of isolation."""
    ctx = new_tenant(live_server, admin)
    yield ctx
    ctx.http.close()


@pytest.fixture
def other_tenant(live_server: LiveServer, admin: httpx.Client) -> Iterator[TenantCtx]:
    ctx = new_tenant(live_server, admin)
    yield ctx
    ctx.http.close()


@pytest.fixture
def cube(tenant: TenantCtx) -> str:
    r = tenant.http.post("/v1/cubes", json={"name": "main", "description": "test cube"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# -- shared helpers ---------------------------------------------------------------------------------------

Json = dict[str, Any]


def assert_error(r: httpx.Response, status: int, code: str) -> Json:
    """The response is an error envelope ``{"error": {"code", "message", "details"}}`` with this status."""
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert sorted(error) == ["code", "details", "message"], error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    return dict(error)


def validation_fields(error: Json) -> list[str]:
    """The field names of a 422 ``validation_error``."""
    return [str(p["field"]) for p in error["details"]["errors"]]


def add_memories(t: TenantCtx, cube: str, *items: Json | str,
                 headers: dict[str, str] | None = None) -> list[Json]:
    """Add memories (strings are taken as content) and return them as the API returned them."""
    memories = [{"content": it} if isinstance(it, str) else it for it in items]
    r = t.http.post(f"/v1/cubes/{cube}/memories", json={"memories": memories}, headers=headers)
    assert r.status_code == 201, r.text
    out = r.json()["memories"]
    assert len(out) == len(memories)
    return list(out)


def wait_enriched(t: TenantCtx, cube: str, timeout: float = 300) -> None:
    """Background enrichment (graph, fine indexes) is asynchronous; tests of what it builds wait for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if t.http.get(f"/v1/cubes/{cube}").json()["enrichment_pending"] == 0:
            return
        time.sleep(0.1)
    raise AssertionError("enrichment did not finish")


def list_all(t: TenantCtx, cube: str, **params: str | int) -> list[Json]:
    """Every memory of a cube that matches ``params``, following cursors."""
    found: list[Json] = []
    cursor: str | None = None
    while True:
        query: dict[str, str | int] = {**params, "limit": 500}
        if cursor:
            query["cursor"] = cursor
        r = t.http.get(f"/v1/cubes/{cube}/memories", params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        found.extend(body["memories"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def search(t: TenantCtx, query: str, cube_ids: list[str], top_k: int = 10,
           filters: Json | None = None) -> list[Json]:
    """Search results (``{"memory", "score"}``), asserting a 200."""
    body: Json = {"query": query, "cube_ids": cube_ids, "top_k": top_k}
    if filters is not None:
        body["filters"] = filters
    r = t.http.post("/v1/search", json=body)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert isinstance(results, list)
    return results


def search_ids(t: TenantCtx, query: str, cube_ids: list[str], top_k: int = 10,
               filters: Json | None = None) -> list[str]:
    return [hit["memory"]["id"] for hit in search(t, query, cube_ids, top_k, filters)]


def sql(database_url: str, query: str,
        params: tuple[Any, ...] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the service's database (a ``postgresql://`` URL) and return its rows."""
    with psycopg.connect(database_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return list(cur.fetchall()) if cur.description else []


def make_cube(t: TenantCtx, name: str | None = None, **fields: Any) -> str:
    r = t.http.post("/v1/cubes", json={"name": name or f"c-{uuid.uuid4().hex[:8]}", **fields})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])
