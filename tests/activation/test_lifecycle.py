"""Servers that restart or run another model: the disk tier survives, a foreign cache is a clean 409."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from tests.activation.conftest import CONTEXT, server, tenant_on, use_key
from tests.conftest import Databases, LiveServer, TenantCtx, make_settings

PREFIX = f"<|im_start|>system\n{CONTEXT}<|im_end|>\n"
QUESTION = "<|im_start|>user\nWhere does Alice live?<|im_end|>\n<|im_start|>assistant\n"


def test_restart_keeps_the_disk_tier_and_budgets_hold(databases: Databases, tmp_path: Path) -> None:
    # Room for one of these prefixes in memory and two on disk.
    settings = make_settings(
        databases, tmp_path, activation_cpu_bytes=4_000_000, activation_disk_bytes=8_000_000
    )
    with server(settings) as admin:
        t = tenant_on(admin, "restart")
        cube = t.http.post("/v1/cubes", json={"name": "c"}).json()["id"]
        made = []
        for i in range(3):
            r = t.http.post(f"/v1/cubes/{cube}/activations", json={"text": f"Note {i}. " + PREFIX})
            assert r.status_code == 201, r.text
            made.append(r.json())
        assert all(2_000_000 < a["bytes"] < 4_000_000 for a in made)
        tiers = {
            a["id"]: (a["tier"], a["status"])
            for a in t.http.get(f"/v1/cubes/{cube}/activations").json()["activations"]
        }
        assert tiers == {
            made[0]["id"]: (None, "evicted"),
            made[1]["id"]: ("disk", "active"),
            made[2]["id"]: ("cpu", "active"),
        }
        stats = t.http.get("/v1/activations/stats").json()
        assert stats["evictions"] == 1 and stats["tiers"]["cpu"]["bytes"] <= 4_000_000
        assert stats["tiers"]["disk"]["bytes"] <= 8_000_000 and stats["tiers"]["gpu"]["available"] is False
        warm = t.http.post(
            "/v1/generate", json={"activation_id": made[2]["id"], "prompt": QUESTION, "max_new_tokens": 6}
        ).json()
        r = t.http.post(
            "/v1/generate", json={"activation_id": made[0]["id"], "prompt": "x", "max_new_tokens": 1}
        )
        assert r.status_code == 409 and "evicted" in r.json()["error"]["message"]
        key = t.key
        t.http.close()

    with server(settings) as admin, use_key(admin, key) as http:
        listed = http.get(f"/v1/cubes/{cube}/activations").json()["activations"]
        assert {a["id"]: a["tier"] for a in listed if a["status"] == "active"} == {
            made[1]["id"]: "disk",
            made[2]["id"]: "disk",
        }
        r = http.post(
            "/v1/generate",
            json={"cube_id": cube, "prompt": "Note 2. " + PREFIX + QUESTION, "max_new_tokens": 6},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["tier_hit"] == "disk" and body["activation_id"] == made[2]["id"]
        assert body["reused_tokens"] >= made[2]["tokens"] - 1
        assert body["token_ids"] == warm["token_ids"]
        after = {a["id"]: a["tier"] for a in http.get(f"/v1/cubes/{cube}/activations").json()["activations"]}
        assert after[made[2]["id"]] == "cpu"


def test_a_cache_from_another_model_is_a_409(
    live_server: LiveServer, tenant: TenantCtx, cube: str, tmp_path: Path
) -> None:
    r = tenant.http.post(f"/v1/cubes/{cube}/activations", json={"text": PREFIX})
    assert r.status_code == 201, r.text
    act = r.json()
    # The same database served by a process running the model in bfloat16: its KV caches differ.
    other = Settings(
        database_url=live_server.settings.database_url,
        data_dir=tmp_path,
        admin_key=live_server.admin_key,  # another key would rotate the suite's admin key out
        activation_dtype="bfloat16",
    )
    with server(other) as admin, use_key(admin, tenant.key) as http:
        r = http.post(
            "/v1/generate", json={"activation_id": act["id"], "prompt": QUESTION, "max_new_tokens": 2}
        )
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "conflict" and "another model" in err["message"]
        assert err["details"]["activation_fingerprint"] == act["fingerprint"]
        assert err["details"]["model_dtype"] == "bfloat16"
        listed = http.get(f"/v1/cubes/{cube}/activations").json()["activations"]
        assert listed[0]["compatible"] is False
        # Without naming it, the foreign cache is simply never matched.
        r = http.post(
            "/v1/generate", json={"cube_id": cube, "prompt": PREFIX + QUESTION, "max_new_tokens": 2}
        )
        assert r.status_code == 200 and r.json()["activation_id"] is None
