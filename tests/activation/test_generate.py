"""Generation over HTTP on the real model: the cache changes the speed, never the tokens."""

from __future__ import annotations

import httpx

from tests.activation.conftest import CONTEXT
from tests.conftest import TenantCtx


def _chat(prompt: str) -> str:
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


def _create(http: httpx.Client, cube: str, **body: object) -> dict:
    r = http.post(f"/v1/cubes/{cube}/activations", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_greedy_tokens_are_identical_with_and_without_the_cache(tenant: TenantCtx, cube: str) -> None:
    prefix = f"<|im_start|>system\n{CONTEXT}<|im_end|>\n"
    act = _create(tenant.http, cube, text=prefix)
    assert (
        act["tokens"] > 16 and act["tier"] == "cpu" and act["source"] == "text" and act["compatible"] is True
    )

    base = {
        "activation_id": act["id"],
        "prompt": "What is Alice allergic to?",
        "chat": True,
        "max_new_tokens": 8,
    }
    cold = tenant.http.post("/v1/generate", json={**base, "use_activation": False})
    assert cold.status_code == 200, cold.text
    assert cold.json()["reused_tokens"] == 0 and cold.json()["tier_hit"] is None

    warm = tenant.http.post("/v1/generate", json=base)
    assert warm.status_code == 200, warm.text
    w = warm.json()
    assert w["reused_tokens"] == act["tokens"] and w["tier_hit"] == "cpu" and w["activation_id"] == act["id"]
    assert w["prefill_tokens"] == w["prompt_tokens"] - act["tokens"]
    assert w["token_ids"] == cold.json()["token_ids"]
    assert w["text"] == cold.json()["text"] and w["text"]

    # A raw prompt that starts with the stored prefix finds it by itself (longest-prefix reuse) ...
    raw = tenant.http.post(
        "/v1/generate",
        json={"cube_id": cube, "prompt": prefix + _chat("What is Alice allergic to?"), "max_new_tokens": 8},
    )
    assert raw.status_code == 200, raw.text
    assert raw.json()["activation_id"] == act["id"] and raw.json()["reused_tokens"] >= act["tokens"] - 1
    assert raw.json()["token_ids"] == cold.json()["token_ids"]

    # ... and the stored cache was not grown or changed by those generations.
    again = tenant.http.post("/v1/generate", json=base)
    assert again.json()["token_ids"] == cold.json()["token_ids"]

    listed = tenant.http.get(f"/v1/cubes/{cube}/activations").json()["activations"]
    assert [a["id"] for a in listed] == [act["id"]] and listed[0]["hits"] == 3

    stats = tenant.http.get("/v1/activations/stats").json()
    assert stats["hits"] == 3 and stats["misses"] == 0
    assert stats["tiers"]["cpu"]["entries"] == 1 and stats["tiers"]["cpu"]["bytes"] == act["bytes"]
    assert stats["model"]["loaded"] is True and stats["model"]["fingerprint"] == act["fingerprint"]


def test_unrelated_prompt_is_a_miss(tenant: TenantCtx, cube: str) -> None:
    _create(tenant.http, cube, text="<|im_start|>system\n" + CONTEXT + "<|im_end|>\n")
    r = tenant.http.post(
        "/v1/generate", json={"cube_id": cube, "prompt": "Once upon a time", "max_new_tokens": 3}
    )
    assert r.status_code == 200, r.text
    assert r.json()["tier_hit"] is None and r.json()["reused_tokens"] == 0
    assert tenant.http.get("/v1/activations/stats").json()["misses"] == 1


def test_memories_and_query_sources_render_the_cube(tenant: TenantCtx, cube: str) -> None:
    r = tenant.http.post(
        f"/v1/cubes/{cube}/memories",
        json={
            "memories": [
                {"content": "Alice is allergic to peanuts"},
                {"content": "Bob plays the cello"},
                {"content": "The weekly sync is on Tuesdays"},
            ]
        },
    )
    assert r.status_code == 201, r.text
    ids = [m["id"] for m in r.json()["memories"]]

    by_ids = _create(tenant.http, cube, memory_ids=[ids[1], ids[0]])
    assert by_ids["source"] == "memories"
    assert by_ids["text"].index("Bob plays the cello") < by_ids["text"].index("Alice is allergic")
    assert "weekly sync" not in by_ids["text"]
    # The same rendering again is the same activation, not a second copy.
    assert _create(tenant.http, cube, memory_ids=[ids[1], ids[0]])["id"] == by_ids["id"]

    by_query = _create(tenant.http, cube, query="what food is Alice allergic to?", top_k=1)
    assert by_query["source"] == "query" and "peanuts" in by_query["text"] and "cello" not in by_query["text"]

    r = tenant.http.post(
        "/v1/generate",
        json={
            "activation_id": by_query["id"],
            "chat": True,
            "prompt": "What is Alice allergic to?",
            "max_new_tokens": 12,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["tier_hit"] == "cpu"

    assert len(tenant.http.get(f"/v1/cubes/{cube}/activations").json()["activations"]) == 2
    d = tenant.http.delete(f"/v1/activations/{by_ids['id']}")
    assert d.status_code == 200 and d.json()["status"] == "deleted"
    assert [a["id"] for a in tenant.http.get(f"/v1/cubes/{cube}/activations").json()["activations"]] == [
        by_query["id"]
    ]
    assert tenant.http.delete(f"/v1/activations/{by_ids['id']}").status_code == 404
    r = tenant.http.post(
        "/v1/generate", json={"activation_id": by_ids["id"], "prompt": "x", "max_new_tokens": 1}
    )
    assert r.status_code == 404


def test_bad_input_and_other_tenants(tenant: TenantCtx, other_tenant: TenantCtx, cube: str) -> None:
    bodies: list[dict[str, object]] = [
        {},
        {"text": "a", "query": "b"},
        {"text": ""},
        {"memory_ids": []},
        {"text": "a", "top_k": 2},
        {"text": "a", "extra": 1},
    ]
    for body in bodies:
        r = tenant.http.post(f"/v1/cubes/{cube}/activations", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["code"] == "validation_error"
    r = tenant.http.post(
        f"/v1/cubes/{cube}/activations", json={"memory_ids": ["00000000-0000-0000-0000-000000000001"]}
    )
    assert r.status_code == 404 and r.json()["error"]["details"]["kind"] == "memory"
    r = tenant.http.post(f"/v1/cubes/{cube}/activations", json={"query": "anything"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"  # the cube has no memories
    bad: list[dict[str, object]] = [
        {"prompt": ""},
        {"prompt": "x", "max_new_tokens": 0},
        {"prompt": "x", "temperature": -1},
    ]
    for body in bad:
        assert tenant.http.post("/v1/generate", json=body).status_code == 422, body
    r = tenant.http.post("/v1/generate", json={"prompt": "x", "max_new_tokens": 4000})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "max_new_tokens"

    act = _create(tenant.http, cube, text="Some private prefix text that belongs to the first tenant only.")
    other = other_tenant.http
    assert other.post(f"/v1/cubes/{cube}/activations", json={"text": "x"}).status_code == 404
    assert other.get(f"/v1/cubes/{cube}/activations").status_code == 404
    assert other.delete(f"/v1/activations/{act['id']}").status_code == 404
    r = other.post("/v1/generate", json={"activation_id": act["id"], "prompt": "x", "max_new_tokens": 1})
    assert r.status_code == 404
    assert other.post("/v1/generate", json={"cube_id": cube, "prompt": "x"}).status_code == 404
    # Another tenant's prompt that starts with the same text never reuses the first tenant's cache.
    r = other.post("/v1/generate", json={"prompt": act["text"] + " And more.", "max_new_tokens": 1})
    assert r.status_code == 200 and r.json()["activation_id"] is None
    assert other.get("/v1/activations/stats").json()["tiers"]["cpu"]["entries"] == 0
