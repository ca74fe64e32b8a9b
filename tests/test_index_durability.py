"""The FAISS index is derived from Postgres: deleted, stale or unwritten index files heal at the next start.

Each test has its own database, data dir and server, because restarting the service is the point.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import httpx
import pytest

from app.config import Settings
from app.container import build
from app.embedded import serve_in_thread
from app.errors import ConfigurationError
from app.schemas.memories import MemoryIn, MemoryPatch
from tests.conftest import Databases, Json, make_settings, sql

QUERIES = ["who is allergic to shellfish?", "when does the ferry leave?", "favourite programming language",
           "what colour is the car?", "birthday party plans"]
FIRST = [
    "Tomás is allergic to shellfish",
    "The ferry to the island leaves at 7:40 every morning",
    "Ines loves writing Rust and dislikes Java",
    "The rental car is a blue Skoda Octavia",
    "Lena's birthday party is on the rooftop on June 3rd",
    "The garden needs watering twice a week in summer",
]
SECOND = [
    "The dentist appointment moved to Friday at 11",
    "Shellfish allergy: Tomás carries an epinephrine pen",
    "The ferry timetable changes in October",
]


@contextmanager
def server(settings: Settings) -> Iterator[httpx.Client]:
    with serve_in_thread(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert settings.admin_key is not None
        http.headers["Authorization"] = f"Bearer {settings.admin_key}"
        yield http


def setup_tenant(http: httpx.Client) -> tuple[str, str]:
    """Create a tenant and a cube; switch the client to the tenant's key. Returns (key, cube id)."""
    key = http.post("/v1/tenants", json={"name": "durable"}).json()["api_key"]
    http.headers["Authorization"] = f"Bearer {key}"
    r = http.post("/v1/cubes", json={"name": "main"})
    assert r.status_code == 201, r.text
    return str(key), str(r.json()["id"])


def add(http: httpx.Client, cube: str, contents: list[str]) -> list[str]:
    r = http.post(f"/v1/cubes/{cube}/memories", json={"memories": [{"content": c} for c in contents]})
    assert r.status_code == 201, r.text
    return [m["id"] for m in r.json()["memories"]]


def results(http: httpx.Client, cubes: list[str], top_k: int = 20) -> list[list[tuple[str, float]]]:
    out = []
    for q in QUERIES:
        r = http.post("/v1/search", json={"query": q, "cube_ids": cubes, "top_k": top_k})
        assert r.status_code == 200, r.text
        out.append([(h["memory"]["id"], h["score"]) for h in r.json()["results"]])
    return out


def index_files(settings: Settings) -> list[Path]:
    return sorted(settings.index_dir.glob("*.faiss"))


def ntotal(path: Path) -> int:
    return int(faiss.read_index(str(path)).ntotal)


def test_search_is_identical_after_the_index_files_are_deleted(databases: Databases, tmp_path: Path) -> None:
    settings = make_settings(databases, tmp_path / "data")
    with server(settings) as http:
        key, cube = setup_tenant(http)
        other = http.post("/v1/cubes", json={"name": "second"}).json()["id"]
        ids = add(http, cube, FIRST)
        add(http, other, SECOND)
        assert http.delete(f"/v1/memories/{ids[5]}").status_code == 200
        before = results(http, [cube, other])
        before_single = results(http, [cube])
    files = index_files(settings)
    assert [p.stem for p in files] == sorted([cube, other])
    assert {p.stem: ntotal(p) for p in files} == {cube: 5, other: 3}
    for path in settings.index_dir.iterdir():
        path.unlink()

    with server(settings) as http:
        http.headers["Authorization"] = f"Bearer {key}"
        assert http.get("/readyz").json()["status"] == "ready"
        assert results(http, [cube, other]) == before
        assert results(http, [cube]) == before_single
        assert all(ids[5] not in [i for i, _ in hits] for hits in before)
    # Rebuilt and written back at start.
    assert {p.stem: ntotal(p) for p in index_files(settings)} == {cube: 5, other: 3}


def test_stale_and_corrupt_index_files_are_rebuilt(databases: Databases, tmp_path: Path) -> None:
    settings = make_settings(databases, tmp_path / "data")
    with server(settings) as http:
        key, cube = setup_tenant(http)
        other = http.post("/v1/cubes", json={"name": "second"}).json()["id"]
        add(http, cube, FIRST[:3])
        add(http, other, SECOND[:1])
    stale = tmp_path / "stale.faiss"
    shutil.copy(settings.index_dir / f"{cube}.faiss", stale)
    with server(settings) as http:
        http.headers["Authorization"] = f"Bearer {key}"
        new_ids = add(http, cube, FIRST[3:])
        before = results(http, [cube, other])
    # An older index of one cube, and garbage in place of the other.
    shutil.copy(stale, settings.index_dir / f"{cube}.faiss")
    (settings.index_dir / f"{other}.faiss").write_bytes(b"not a faiss index")
    assert ntotal(settings.index_dir / f"{cube}.faiss") == 3

    with server(settings) as http:
        http.headers["Authorization"] = f"Bearer {key}"
        after = results(http, [cube, other])
    assert after == before
    assert any(new_ids[0] == hits[0][0] for hits in after)
    assert ntotal(settings.index_dir / f"{cube}.faiss") == 6
    assert ntotal(settings.index_dir / f"{other}.faiss") == 1


def test_writes_that_reached_postgres_but_not_the_index_heal_at_start(databases: Databases,
                                                                      tmp_path: Path) -> None:
    settings = make_settings(databases, tmp_path / "data", index_flush_seconds=3600)
    with server(settings) as http:
        key, cube = setup_tenant(http)
        first_ids = add(http, cube, FIRST)
    assert ntotal(settings.index_dir / f"{cube}.faiss") == 6  # flushed on a clean stop

    # A process that commits to Postgres and then dies before its index flush.
    crashed = build(settings)
    principal = crashed.auth.authenticate(key)
    added = crashed.memories.add(principal, uuid.UUID(cube), [MemoryIn(content=c) for c in SECOND])
    second_ids = [str(m.id) for m in added.memories]
    crashed.memories.delete(principal, uuid.UUID(first_ids[0]))  # removal not flushed either
    crashed.memories.update(principal, uuid.UUID(first_ids[1]),
                            MemoryPatch(content="The ferry is cancelled for the whole winter"))
    # The crash: no close(), so nothing is flushed. Its background enrichment is stopped (that flushes
    # nothing) so the dead process does not go on writing beside the next one.
    crashed.enricher.stop()
    crashed.engine.dispose()
    assert ntotal(settings.index_dir / f"{cube}.faiss") == 6
    assert sql(settings.database_url or "", "SELECT count(*) FROM memories WHERE status = 'active'") == [(8,)]

    with server(settings) as http:
        http.headers["Authorization"] = f"Bearer {key}"
        hits: list[list[Json]] = []
        for q in ("dentist appointment", "epinephrine pen for shellfish allergy", "ferry timetable in October"):
            r = http.post("/v1/search", json={"query": q, "cube_ids": [cube], "top_k": 1})
            hits.append(r.json()["results"])
        assert [h[0]["memory"]["id"] for h in hits] == second_ids
        r = http.post("/v1/search", json={"query": "Tomás is allergic to shellfish", "cube_ids": [cube],
                                          "top_k": 20})
        found = [h["memory"]["id"] for h in r.json()["results"]]
        assert first_ids[0] not in found  # the delete holds after the restart
        assert len(found) == 8
        r = http.post("/v1/search", json={"query": "is the ferry running in winter?", "cube_ids": [cube],
                                          "top_k": 1})
        top = r.json()["results"][0]
        assert top["memory"]["id"] == first_ids[1]
        assert top["memory"]["content"] == "The ferry is cancelled for the whole winter"
        assert top["score"] > 0.5
    assert ntotal(settings.index_dir / f"{cube}.faiss") == 8


@pytest.mark.parametrize(("column", "value"), [("embedding_dim", "768"),
                                               ("embedding_model", "'bge-base-en-v1.5'")])
def test_a_stored_embedding_model_or_dim_mismatch_refuses_to_start(databases: Databases, tmp_path: Path,
                                                                   column: str, value: str) -> None:
    settings = make_settings(databases, tmp_path / "data")
    with server(settings) as http:
        _, cube = setup_tenant(http)
        add(http, cube, FIRST[:2])
    url = settings.database_url or ""
    sql(url, f"UPDATE memories SET {column} = {value} WHERE content = %s", (FIRST[0],))
    with pytest.raises(ConfigurationError) as info:
        build(settings)
    message = str(info.value)
    assert "all-MiniLM-L6-v2" in message
    assert re.search(r"768|bge-base-en-v1\.5", message)
    assert "MEMCUBED_EMBEDDING_MODEL" in message
    assert info.value.details["configured"] == "all-MiniLM-L6-v2"
    expected = {"model": "all-MiniLM-L6-v2", "dim": 768} if column == "embedding_dim" else \
        {"model": "bge-base-en-v1.5", "dim": 384}
    assert info.value.details["stored"] == [expected]
    # Nothing was dropped: the row is still there, unchanged.
    assert sql(url, "SELECT count(*) FROM memories") == [(2,)]
