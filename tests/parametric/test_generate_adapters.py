"""Generation with adapters: the output changes, the base model is untouched afterwards, and a KV cache built
without an adapter is never reused with it."""

from __future__ import annotations

from typing import Any

from tests.activation.conftest import CONTEXT
from tests.conftest import TenantCtx, assert_error
from tests.parametric.conftest import config, upload

PREFIX = f"<|im_start|>system\n{CONTEXT}<|im_end|>\n"
QUESTION = "<|im_start|>user\nWhere does Alice live?<|im_end|>\n<|im_start|>assistant\n"


def _generate(t: TenantCtx, **body: Any) -> dict[str, Any]:
    r = t.http.post("/v1/generate", json={"max_new_tokens": 8, **body})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_adapter_changes_output_and_never_reuses_a_base_cache(tenant: TenantCtx, cube: str,
                                                              adapter_bytes: bytes) -> None:
    adapter = upload(tenant.http, cube, config(), adapter_bytes).json()
    act = tenant.http.post(f"/v1/cubes/{cube}/activations", json={"text": PREFIX}).json()

    base = _generate(tenant, cube_id=cube, prompt=PREFIX + QUESTION)
    assert base["activation_id"] == act["id"] and base["reused_tokens"] >= act["tokens"] - 1
    assert base["adapter_ids"] == [] and base["fingerprint"] == act["fingerprint"]

    tuned = _generate(tenant, cube_id=cube, prompt=PREFIX + QUESTION, adapter_ids=[adapter["id"]])
    assert tuned["activation_id"] is None and tuned["tier_hit"] is None and tuned["reused_tokens"] == 0
    assert tuned["prefill_tokens"] == tuned["prompt_tokens"] == base["prompt_tokens"]
    assert tuned["adapter_ids"] == [adapter["id"]]
    assert tuned["fingerprint"] != base["fingerprint"] and len(tuned["fingerprint"]) == 64
    assert tuned["token_ids"] != base["token_ids"]

    # Naming the activation with the adapter uses its prefix text but not its cache.
    named = _generate(tenant, activation_id=act["id"], prompt="Where does Alice live?", chat=True,
                      adapter_ids=[adapter["id"]])
    assert named["activation_id"] is None and named["reused_tokens"] == 0
    assert named["token_ids"] == tuned["token_ids"]

    # Without the adapter again: the base tokens, from the cache, exactly as before.
    again = _generate(tenant, cube_id=cube, prompt=PREFIX + QUESTION)
    assert again["token_ids"] == base["token_ids"] and again["activation_id"] == act["id"]
    cold = _generate(tenant, prompt=PREFIX + QUESTION, use_activation=False)
    assert cold["token_ids"] == base["token_ids"]

    hits = [a["hits"] for a in tenant.http.get(f"/v1/cubes/{cube}/activations").json()["activations"]]
    assert hits == [2]


def test_unusable_adapters_are_refused(tenant: TenantCtx, other_tenant: TenantCtx, cube: str,
                                       adapter_bytes: bytes) -> None:
    adapter = upload(tenant.http, cube, config(), adapter_bytes).json()
    assert_error(other_tenant.http.post("/v1/generate", json={"prompt": "Hi", "adapter_ids": [adapter["id"]]}),
                 404, "not_found")
    tenant.http.delete(f"/v1/adapters/{adapter['id']}")
    e = assert_error(tenant.http.post("/v1/generate", json={"prompt": "Hi", "adapter_ids": [adapter["id"]]}),
                     409, "conflict")
    assert e["details"] == {"status": "deleted"}
    tenant.http.post(f"/v1/adapters/{adapter['id']}/restore")
    e = assert_error(tenant.http.post("/v1/generate", json={"prompt": "Hi", "adapter_ids": [adapter["id"]] * 17}),
                     422, "validation_error")
