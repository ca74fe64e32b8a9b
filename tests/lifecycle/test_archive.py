"""The portable archive: a round trip into another tenant loses nothing and searches identically; a damaged or
forged archive is refused whole."""

from __future__ import annotations

import base64
import json

import pytest

from app.activation.fingerprint import pack_tokens, token_hash
from tests.conftest import LiveServer, TenantCtx, assert_error, make_cube, sql
from tests.lifecycle.helpers import (
    archive,
    contents,
    edges,
    entities,
    histories,
    import_archive,
    members,
    ranked,
    rebuild,
    seed,
    wait_enriched,
)


def test_archive_is_a_tar_with_a_manifest_of_every_file(tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "src", description="archived", owner_id="priya")
    seed(tenant, cube)
    body = archive(tenant, cube)
    files = members(body)
    assert next(iter(files)) == "manifest.json"
    manifest = json.loads(files.pop("manifest.json"))
    assert manifest["format"] == "memcubed-archive"
    assert manifest["format_version"] == 1
    assert manifest["cube"] == {"name": "src", "description": "archived", "owner_id": "priya", "provenance": {},
                                "forget_policy": "archive", "policy": None}
    assert manifest["embedding_model"] == {"name": "all-MiniLM-L6-v2", "dim": 384}
    assert manifest["activation_fingerprints"] == []
    assert sorted(manifest["files"]) == sorted(files) == ["activations.jsonl", "adapters.jsonl", "edges.jsonl",
                                                          "entities.jsonl", "memories.jsonl"]
    counts = manifest["counts"]
    assert counts["memories"] == 7 and counts["activations"] == 0 and counts["adapters"] == 0
    assert counts["versions"] >= 2 and counts["edges"] >= 3 and counts["entities"] >= 2
    assert len(files["memories.jsonl"].splitlines()) == 7


def test_round_trip_into_another_tenant_keeps_contents_versions_graph_and_search(
        tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "diary", description="round trip")
    seed(tenant, cube)
    policy = tenant.http.put(f"/v1/cubes/{cube}/policy", json={"threshold": 0.35, "max_active": 50})
    assert policy.status_code == 200, policy.text
    before = (contents(tenant, cube), histories(tenant, cube), edges(tenant, cube), entities(tenant, cube))
    r = import_archive(other_tenant, archive(tenant, cube))
    assert r.status_code == 201, r.text
    out = r.json()
    copy = out["cube"]["id"]
    assert out["cube"]["name"] == "diary" and out["cube"]["description"] == "round trip"
    assert out["cube"]["tenant_id"] == other_tenant.id
    # The response does not wait for the fine indexes of the (already enriched) memories: they follow on the
    # enrichment thread, and the cube counts its 6 active memories as pending until then.
    assert out["cube"]["memory_count"] == 6 and out["cube"]["enrichment_pending"] == 6
    assert out["embeddings"] == "reused" and out["activations_stale"] == 0
    assert out["counts"]["memories"] == 7
    after = (contents(other_tenant, copy), histories(other_tenant, copy), edges(other_tenant, copy),
             entities(other_tenant, copy))
    assert after == before
    copied = other_tenant.http.get(f"/v1/cubes/{copy}/policy").json()
    assert (copied["threshold"], copied["max_active"], copied["is_default"]) == (0.35, 50, False)
    assert any(v["reason"] == "diet changed" for v in after[1]["Priya is vegan since 2022"])
    # Same query, same order and the same scores, in both modes (both cubes see the same sequence of searches).
    wait_enriched(other_tenant, copy)
    for query in ("what does Priya eat?", "who wants to adopt a child?", "router reset"):
        for mode in ("fast", "fine"):
            assert ranked(other_tenant, copy, query, mode) == ranked(tenant, cube, query, mode)
    assert ranked(tenant, cube, "what does Priya eat?", "fast")[0][0] == "Priya is vegan since 2022"


def test_import_renames_and_records_provenance(live_server: LiveServer, tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "named")
    seed(tenant, cube)
    body = archive(tenant, cube)
    assert_error(import_archive(tenant, body), 409, "conflict")  # the name is taken in this tenant
    r = import_archive(tenant, body, name="named-copy")
    assert r.status_code == 201, r.text
    copy = r.json()["cube"]["id"]
    [(provenance,)] = sql(live_server.settings.database_url or "", "select provenance from cubes where id = %s",
                          (copy,))
    assert provenance["imported_from"]["cube_id"] == cube
    assert provenance["imported_from"]["name"] == "named"


def _flip(body: bytes, needle: bytes) -> bytes:
    at = body.index(needle)
    return body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1:]


@pytest.mark.parametrize("damage", ["flip_memories", "truncate", "manifest_sha", "format_version", "empty",
                                    "not_tar", "unlisted_member", "forged_edge", "bad_header"])
def test_damaged_archive_is_refused_and_nothing_is_written(live_server: LiveServer, tenant: TenantCtx,
                                                           other_tenant: TenantCtx, damage: str) -> None:
    cube = make_cube(tenant, "fragile")
    seed(tenant, cube)
    body = archive(tenant, cube)
    files = members(body)
    manifest = json.loads(files["manifest.json"])
    if damage == "flip_memories":
        bad = _flip(body, b"Priya is vegan")
    elif damage == "truncate":
        bad = body[: len(body) // 2]
    elif damage == "manifest_sha":
        sha = manifest["files"]["edges.jsonl"].encode()
        bad = body.replace(sha, sha[:-1] + (b"0" if sha[-1:] != b"0" else b"1"))
    elif damage == "format_version":
        bad = body.replace(b'"format_version": 1', b'"format_version": 7')
    elif damage == "empty":
        bad = b""
    elif damage == "not_tar":
        bad = b"memories, honestly" * 100
    elif damage == "unlisted_member":
        bad = rebuild({k: v for k, v in files.items() if k != "manifest.json"}, manifest)
        bad = bad.replace(b'"edges.jsonl"', b'"edgez.jsonl"', 1)
    elif damage == "bad_header":  # correctly hashed, but the cube header is not one a cube could have
        manifest["cube"] = {"name": "", "forget_policy": "shred"}
        bad = rebuild({k: v for k, v in files.items() if k != "manifest.json"}, manifest)
    else:  # well-formed and correctly hashed, but an edge points at a memory that is not in the archive
        edge = json.loads(files["edges.jsonl"].splitlines()[0])
        edge["target_id"] = "00000000-0000-0000-0000-000000000001"
        files["edges.jsonl"] = (json.dumps(edge) + "\n").encode() + files["edges.jsonl"]
        manifest["counts"]["edges"] += 1
        bad = rebuild({k: v for k, v in files.items() if k != "manifest.json"}, manifest)
    assert bad != body
    error = assert_error(import_archive(other_tenant, bad), 422, "invalid_input")
    assert error["message"].startswith("archive rejected: ")
    assert other_tenant.http.get("/v1/cubes").json()["cubes"] == []
    url = live_server.settings.database_url or ""
    assert sql(url, "select count(*) from memories where tenant_id = %s", (other_tenant.id,)) == [(0,)]
    assert sql(url, "select count(*) from cubes where tenant_id = %s", (other_tenant.id,)) == [(0,)]


def test_activation_cache_of_another_model_is_imported_stale(live_server: LiveServer, tenant: TenantCtx,
                                                              other_tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "with-cache")
    seed(tenant, cube)
    files = members(archive(tenant, cube))
    manifest = json.loads(files.pop("manifest.json"))
    ids = [1, 2, 3, 4]
    files["activations.jsonl"] = (json.dumps({
        "id": "00000000-0000-0000-0000-00000000000a", "model_id": "some-other-lm", "fingerprint": "ab" * 32,
        "token_hash": token_hash(ids), "tokens": 4, "token_ids": base64.b64encode(pack_tokens(ids)).decode(),
        "source": "text", "prefix_text": "Alice is allergic to peanuts.", "precision": "float16", "hits": 3,
        "created_at": "2024-01-02T03:04:05Z", "file": None}) + "\n").encode()
    manifest["counts"]["activations"] = 1
    manifest["activation_fingerprints"] = ["ab" * 32]
    r = import_archive(other_tenant, rebuild(files, manifest))
    assert r.status_code == 201, r.text
    assert r.json()["activations_stale"] == 1 and r.json()["counts"]["activations"] == 1
    listed = other_tenant.http.get(f"/v1/cubes/{r.json()['cube']['id']}/activations").json()["activations"]
    assert [(a["status"], a["tier"], a["model_id"], a["tokens"], a["text"]) for a in listed] == [
        ("stale", None, "some-other-lm", 4, "Alice is allergic to peanuts.")]


def test_archive_of_another_tenants_cube_is_not_found(tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "private")
    assert_error(other_tenant.http.get(f"/v1/cubes/{cube}/archive"), 404, "not_found")


def test_embeddings_of_another_model_are_recomputed(tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "other-model")
    seed(tenant, cube)
    body = archive(tenant, cube)
    files = members(body)
    manifest = json.loads(files.pop("manifest.json"))
    manifest["embedding_model"] = {"name": "some-other-embedder", "dim": 768}
    r = import_archive(other_tenant, rebuild(files, manifest))
    assert r.status_code == 201, r.text
    assert r.json()["embeddings"] == "recomputed"
    assert r.json()["cube"]["enrichment_pending"] == 6  # the graph is rebuilt from this server's vectors
    copy = r.json()["cube"]["id"]
    wait_enriched(other_tenant, copy)
    assert {e[2] for e in edges(other_tenant, copy)} == {e[2] for e in edges(tenant, cube)}
    assert ranked(other_tenant, copy, "what does Priya eat?", "fast") == ranked(tenant, cube,
                                                                                 "what does Priya eat?", "fast")


def test_import_with_an_idempotency_key_creates_one_cube(tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "once")
    seed(tenant, cube)
    body = archive(tenant, cube)
    first = import_archive(other_tenant, body, headers={"Idempotency-Key": "import-1"})
    again = import_archive(other_tenant, body, headers={"Idempotency-Key": "import-1"})
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert [c["id"] for c in other_tenant.http.get("/v1/cubes").json()["cubes"]] == [first.json()["cube"]["id"]]
    other = import_archive(other_tenant, body, headers={"Idempotency-Key": "import-1"}, name="renamed")
    assert_error(other, 409, "conflict")  # the same key with another request
