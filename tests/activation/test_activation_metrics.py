"""The activation store's hits and misses reach /metrics, summed over tenants and naming none."""

from __future__ import annotations

from tests.activation.conftest import CONTEXT
from tests.conftest import TenantCtx
from tests.test_observability import sample, scrape


def test_activation_hits_and_misses_are_counted(tenant: TenantCtx, cube: str) -> None:
    before = scrape(tenant.http)
    prefix = f"<|im_start|>system\n{CONTEXT}<|im_end|>\n"
    r = tenant.http.post(f"/v1/cubes/{cube}/activations", json={"text": prefix})
    assert r.status_code == 201, r.text
    activation = r.json()["id"]
    for _ in range(2):
        hit = tenant.http.post("/v1/generate", json={"activation_id": activation, "prompt": "Allergies?",
                                                     "chat": True, "max_new_tokens": 2})
        assert hit.status_code == 200 and hit.json()["tier_hit"] == "cpu", hit.text
    miss = tenant.http.post("/v1/generate", json={"cube_id": cube, "prompt": "Once upon a time", "max_new_tokens": 2})
    assert miss.status_code == 200 and miss.json()["tier_hit"] is None, miss.text
    after = scrape(tenant.http)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert (delta("memcubed_activation_lookups_total", result="hit"),
            delta("memcubed_activation_lookups_total", result="miss")) == (2, 1)
    stats = tenant.http.get("/v1/activations/stats").json()
    assert (stats["hits"], stats["misses"]) == (2, 1)
    assert ("memcubed_activation_moves_total", (("move", "eviction"),)) in after
    assert tenant.id not in tenant.http.get("/metrics").text
