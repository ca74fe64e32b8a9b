"""Shared steps of the lifecycle tests: archives, graph and history reads, a graph-rich seeded cube."""

from __future__ import annotations

import io
import json
import tarfile

import httpx

from app.lifecycle.archive import ArchiveWriter
from tests.conftest import Json, TenantCtx, add_memories, list_all, wait_enriched

TAR = {"Content-Type": "application/x-tar"}
TURNS = [
    ("Caroline", "I went to the LGBTQ support group yesterday and it was so powerful.", "2023-05-07T13:56:00Z"),
    ("Melanie", "That's great! I painted a sunset over the lake last week.", "2023-05-07T13:57:00Z"),
    ("Caroline", "I'm researching adoption agencies, I want to be a mom.", "2023-05-07T13:58:00Z"),
    ("Melanie", "Caroline, you will be an amazing mother. My kids love camping at the beach.", "2023-05-07T13:59:00Z"),
]



def seed(t: TenantCtx, cube: str) -> list[Json]:
    """Turns of a session (edges and entities), plain memories, an update, a delete: versions of every kind."""
    r = t.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": "s1", "messages": [
        {"role": "user", "speaker": sp, "content": text, "timestamp": ts} for sp, text, ts in TURNS]})
    assert r.status_code == 201, r.text
    mems = list(r.json()["memories"]) + add_memories(
        t, cube,
        {"content": "Priya is vegetarian", "memory_type": "semantic", "tags": ["food"], "importance": 0.9,
         "metadata": {"since": 2019}},
        {"content": "To reset the router hold the button for ten seconds", "memory_type": "procedural"},
        "A note about old phone numbers that will be deleted",
    )
    wait_enriched(t, cube)
    r = t.http.patch(f"/v1/memories/{mems[4]['id']}", json={"content": "Priya is vegan since 2022",
                                                           "reason": "diet changed"})
    assert r.status_code == 200, r.text
    assert t.http.delete(f"/v1/memories/{mems[6]['id']}").status_code == 200
    wait_enriched(t, cube)
    return mems


def archive(t: TenantCtx, cube: str) -> bytes:
    r = t.http.get(f"/v1/cubes/{cube}/archive")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-tar"
    assert r.headers["content-disposition"] == f'attachment; filename="cube-{cube}.tar"'
    return r.content


def import_archive(t: TenantCtx, body: bytes, headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
    return t.http.post("/v1/cubes/import-archive", content=body, headers={**TAR, **(headers or {})}, params=params)


def members(body: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as tar:
        out = {}
        for info in tar:
            fh = tar.extractfile(info)
            assert fh is not None
            out[info.name] = fh.read()
        return out


def rebuild(files: dict[str, bytes], manifest: Json) -> bytes:
    """A well-formed archive of ``files`` (hashes recomputed): what a deliberate forger would send."""
    writer = ArchiveWriter()
    for name, data in files.items():
        writer.add_bytes(name, data)
    header = {k: v for k, v in manifest.items() if k not in ("format", "format_version", "files")}
    return writer.to_bytes(header)


def contents(t: TenantCtx, cube: str) -> dict[str, Json]:
    """Every memory by content, without what is local to a cube (ids, times of the copy)."""
    out = {}
    for m in list_all(t, cube):
        out[m["content"]] = {k: v for k, v in m.items() if k not in ("id", "cube_id", "merged_into", "superseded_by")}
    return out


def histories(t: TenantCtx, cube: str) -> dict[str, list[Json]]:
    out = {}
    for m in list_all(t, cube):
        r = t.http.get(f"/v1/memories/{m['id']}/history")
        assert r.status_code == 200, r.text
        out[m["content"]] = [{k: v for k, v in ver.items()} for ver in r.json()["versions"]]
    return out


def edges(t: TenantCtx, cube: str) -> list[tuple[str, str, str, float]]:
    """Edges by the contents of their ends, sorted."""
    by_id = {m["id"]: m["content"] for m in list_all(t, cube)}
    r = t.http.get(f"/v1/cubes/{cube}/graph", params={"limit": 1000})
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    return sorted((by_id[e["source_id"]], by_id[e["target_id"]], e["type"], e["weight"]) for e in r.json()["edges"])


def entities(t: TenantCtx, cube: str) -> list[tuple[str, str, int]]:
    r = t.http.get(f"/v1/cubes/{cube}/entities", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return sorted((e["name"], e["kind"], e["mentions"]) for e in r.json()["entities"])


def ranked(t: TenantCtx, cube: str, query: str, mode: str) -> list[tuple[str, float]]:
    r = t.http.post("/v1/search", json={"query": query, "cube_ids": [cube], "top_k": 5, "mode": mode})
    assert r.status_code == 200, r.text
    return [(h["memory"]["content"], h["score"]) for h in r.json()["results"]]


def manifest_of(body: bytes) -> Json:
    return dict(json.loads(members(body)["manifest.json"]))
