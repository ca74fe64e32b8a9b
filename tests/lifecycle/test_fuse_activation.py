"""Fuse into activation: the job builds a KV cache of the cube's most important memories within the token budget,
with the real SmolLM2-135M (converted once per machine, shared with the activation tests)."""

from __future__ import annotations

from app.activation.model import ModelSpec, load_model
from tests.activation.conftest import MODELS_DIR  # sets the shared model dir before servers start
from tests.conftest import Json, TenantCtx, add_memories, make_cube
from tests.parametric.conftest import config, lora_tensors, upload
from tests.workers.helpers import wait_job

FACTS = [
    ("Alice is allergic to peanuts", 0.95),
    ("Alice's daughter is called Maya", 0.8),
    ("Alice works as a nurse at the city hospital", 0.6),
    ("Alice once visited Lisbon in the rain", 0.3),
    ("Alice thinks the office coffee is too weak", 0.1),
]


def fuse(t: TenantCtx, cube: str, **body: int) -> Json:
    r = t.http.post(f"/v1/cubes/{cube}/fuse", json={"into": "activation", **body})
    assert r.status_code == 202, r.text
    assert r.json()["job"]["kind"] == "fuse_activation"
    job = wait_job(t.http, r.json()["job"]["id"], timeout=600)
    assert job["status"] == "done", job
    result: Json = job["result"]
    return result


def test_fuse_builds_a_cache_of_the_most_important_memories(tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "fuse-kv")
    mems = add_memories(tenant, cube, *[{"content": c, "importance": imp, "memory_type": "semantic"}
                                        for c, imp in FACTS])
    by_importance = [m["id"] for m in mems]  # FACTS are listed most important first
    everything = fuse(tenant, cube)
    assert everything["memory_ids"] == by_importance
    assert everything["memories"] == 5
    listed = tenant.http.get(f"/v1/cubes/{cube}/activations").json()["activations"]
    [row] = [a for a in listed if a["id"] == everything["activation_id"]]
    assert (row["source"], row["status"], row["tokens"]) == ("memories", "active", everything["tokens"])
    assert row["text"].index("peanuts") < row["text"].index("Maya") < row["text"].index("coffee")

    budget = everything["tokens"] - 12  # too small for the least important memory's line
    smaller = fuse(tenant, cube, max_tokens=budget)
    assert smaller["budget"] == budget
    assert 0 < smaller["tokens"] <= budget
    assert smaller["memory_ids"] == by_importance[: smaller["memories"]]
    assert smaller["memories"] < 5


def test_a_fork_carries_the_kv_cache_of_this_servers_model(tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "fuse-fork")
    add_memories(tenant, cube, *[{"content": c, "importance": imp} for c, imp in FACTS[:3]])
    built = fuse(tenant, cube)
    r = tenant.http.post(f"/v1/cubes/{cube}/fork", json={"name": "fuse-fork-copy"})
    assert r.status_code == 201, r.text
    assert (r.json()["counts"]["activations"], r.json()["activations_stale"]) == (1, 0)
    [copy] = tenant.http.get(f"/v1/cubes/{r.json()['cube']['id']}/activations").json()["activations"]
    assert copy["id"] != built["activation_id"]
    assert (copy["status"], copy["tier"], copy["tokens"], copy["source"]) == ("active", "disk", built["tokens"],
                                                                              "memories")
    assert copy["bytes"] > 0
    # Generation with the copied cache reuses it instead of prefilling the prefix again.
    g = tenant.http.post("/v1/generate", json={"activation_id": copy["id"], "prompt": "What is Alice allergic to?",
                                              "max_new_tokens": 4})
    assert g.status_code == 200, g.text
    assert (g.json()["activation_id"], g.json()["reused_tokens"]) == (copy["id"], built["tokens"])


def test_adapters_travel_in_the_archive(tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    cube = make_cube(tenant, "with-adapter")
    add_memories(tenant, cube, "Alice is allergic to peanuts")
    lm = load_model(ModelSpec(name="smollm2-135m-instruct", models_dir=MODELS_DIR, threads=1))
    uploaded = upload(tenant.http, cube, config(), lora_tensors(lm), name="alice-style")
    assert uploaded.status_code == 201, uploaded.text
    body = tenant.http.get(f"/v1/cubes/{cube}/archive").content
    r = other_tenant.http.post("/v1/cubes/import-archive", content=body,
                               headers={"Content-Type": "application/x-tar"})
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["adapters"] == 1
    [copy] = other_tenant.http.get(f"/v1/cubes/{r.json()['cube']['id']}/adapters").json()["adapters"]
    fields = ("name", "version", "base_fingerprint", "rank", "alpha", "target_modules", "sha256", "size_bytes")
    assert {k: copy[k] for k in fields} == {k: uploaded.json()[k] for k in fields}
    assert (copy["source"], copy["status"]) == ("import", "active")
