"""Distillation jobs on a tiny cube: a few CPU steps make an adapter that knows the trained facts better than the
base model does, and a running distillation can be cancelled, leaving no adapter."""

from __future__ import annotations

from tests.conftest import TenantCtx, add_memories, assert_error
from tests.workers.helpers import wait_job

FACTS = [
    "Zorvath Quill lives in the city of Marrowdale.",
    "Zorvath Quill works as a glassblower in Marrowdale.",
    "Elina Brask is the sister of Zorvath Quill.",
    "Elina Brask lives in the city of Marrowdale too.",
    "Zorvath Quill and Elina Brask run the Marrowdale glass market.",
    "The Marrowdale glass market opens on Thursdays.",
    "Elina Brask sells blue glass at the Marrowdale market.",
]
"""Memories about the same made-up people and town: a memory held out of training still mentions them."""


def test_distill_learns_the_cube(tenant: TenantCtx, cube: str) -> None:
    add_memories(tenant, cube, *FACTS)
    r = tenant.http.post(f"/v1/cubes/{cube}/adapters/distill",
                         json={"steps": 12, "rank": 4, "learning_rate": 0.002, "name": "people"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["kind"] == "distill" and job["params"] == {"steps": 12, "rank": 4, "learning_rate": 0.002,
                                                          "name": "people"}
    done = wait_job(tenant.http, job["id"], timeout=1200)
    assert done["status"] == "done", done
    result = done["result"]
    adapter = tenant.http.get(f"/v1/adapters/{result['adapter_id']}").json()
    assert (adapter["name"], adapter["version"], adapter["source"], adapter["rank"]) == ("people", 1, "distill", 4)
    assert adapter["job_id"] == job["id"] and adapter["metrics"] == result["metrics"]
    assert adapter["size_bytes"] == result["size_bytes"] and adapter["created_by"] == f"job:{job['id']}"
    m = result["metrics"]
    assert (m["train_memories"], m["held_out_memories"], m["steps"]) == (6, 1, 12)
    assert m["final_loss"] < m["first_loss"]
    ppl = m["perplexity"]
    # A memory it never trained on, about people it did learn, is less surprising with the adapter ...
    assert ppl["held_out"]["adapter"] < ppl["held_out"]["base"]
    # ... and trained facts, verbatim and in a frame training never saw, are far less surprising with the adapter.
    assert ppl["trained"]["adapter"] < ppl["trained"]["base"] / 2
    assert ppl["trained_reframed"]["adapter"] < ppl["trained_reframed"]["base"] / 2
    assert m["closed_book"]["trained"]["questions"] == 6 and m["closed_book"]["held_out"]["questions"] == 1
    assert m["closed_book"]["trained"]["adapter"] >= m["closed_book"]["trained"]["base"]

    # The adapter is usable at generation at once.
    g = tenant.http.post("/v1/generate", json={"prompt": "Tobin Ashgrove lives in the city of",
                                               "adapter_ids": [adapter["id"]], "max_new_tokens": 3})
    assert g.status_code == 200, g.text


def test_distill_filter_and_too_few_memories(tenant: TenantCtx, cube: str) -> None:
    add_memories(tenant, cube, *FACTS[:2], {"content": FACTS[2], "tags": ["people"]})
    e = assert_error(tenant.http.post(f"/v1/cubes/{cube}/adapters/distill",
                                      json={"memory_filter": {"tag": "people"}}), 422, "invalid_input")
    assert e["details"] == {"field": "memory_filter", "memories": 1}
    e = assert_error(tenant.http.post(f"/v1/cubes/{cube}/adapters/distill", json={"steps": 0}), 422,
                     "validation_error")


def test_cancel_a_running_distillation(tenant: TenantCtx, cube: str) -> None:
    add_memories(tenant, cube, *FACTS)
    slow = tenant.http.post(f"/v1/cubes/{cube}/adapters/distill", json={"steps": 5000, "rank": 2}).json()
    running = wait_job(tenant.http, slow["id"], timeout=600, until=("running",))
    assert running["status"] == "running"
    cancelled = tenant.http.post(f"/v1/jobs/{slow['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    # The queue runs one job at a time: once the next one is done, the cancelled one has stopped.
    quick = tenant.http.post(f"/v1/cubes/{cube}/adapters/distill", json={"steps": 1, "rank": 2}).json()
    assert wait_job(tenant.http, quick["id"], timeout=1200)["status"] == "done"
    final = tenant.http.get(f"/v1/jobs/{slow['id']}").json()
    assert final["status"] == "cancelled" and final["result"] == {}
    adapters = tenant.http.get(f"/v1/cubes/{cube}/adapters", params={"include_deleted": True}).json()["adapters"]
    assert [(a["job_id"], a["version"]) for a in adapters] == [(quick["id"], 1)]
    assert_error(tenant.http.post(f"/v1/jobs/{quick['id']}/cancel"), 409, "conflict")
