"""Adapter upload, validation (each error code), versions, soft delete and restore, over HTTP."""

from __future__ import annotations

import hashlib

import pytest
import torch
from safetensors.torch import save

from app.activation.model import HFCausalLM
from tests.activation.conftest import server
from tests.conftest import Databases, LiveServer, TenantCtx, assert_error, make_settings, sql
from tests.parametric.conftest import config, lora_tensors, upload


def test_upload_versions_delete_restore(tenant: TenantCtx, other_tenant: TenantCtx, cube: str,
                                        adapter_bytes: bytes, live_server: LiveServer) -> None:
    r = upload(tenant.http, cube, config(), adapter_bytes, name="facts")
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["name"], first["version"], first["rank"], first["alpha"]) == ("facts", 1, 4, 8)
    assert first["target_modules"] == ["q_proj", "v_proj"] and first["source"] == "upload"
    assert first["sha256"] == hashlib.sha256(adapter_bytes).hexdigest()
    assert first["size_bytes"] == len(adapter_bytes) and first["status"] == "active"
    assert first["base_model"] == "smollm2-135m-instruct" and len(first["base_fingerprint"]) == 64
    stored = live_server.settings.adapter_dir / first["sha256"][:2] / f"{first['sha256']}.safetensors"
    assert stored.read_bytes() == adapter_bytes

    second = upload(tenant.http, cube, config(), adapter_bytes, name="facts").json()
    assert second["version"] == 2 and second["sha256"] == first["sha256"]
    assert tenant.http.get(f"/v1/adapters/{first['id']}").json() == first

    deleted = tenant.http.delete(f"/v1/adapters/{first['id']}")
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted" and deleted.json()["deleted_at"]
    assert_error(tenant.http.delete(f"/v1/adapters/{first['id']}"), 409, "conflict")
    listed = tenant.http.get(f"/v1/cubes/{cube}/adapters").json()["adapters"]
    assert [a["id"] for a in listed] == [second["id"]]
    everything = tenant.http.get(f"/v1/cubes/{cube}/adapters", params={"include_deleted": True}).json()
    assert [(a["version"], a["status"]) for a in everything["adapters"]] == [(1, "deleted"), (2, "active")]

    restored = tenant.http.post(f"/v1/adapters/{first['id']}/restore").json()
    assert restored["status"] == "active" and restored["deleted_at"] is None
    actions = sql(live_server.settings.database_url or "",
                  "select action from audit_log where object_id = %s order by id", (first["id"],))
    assert [a for (a,) in actions] == ["adapter.upload", "adapter.delete", "adapter.restore"]

    # Another tenant sees none of it.
    assert_error(other_tenant.http.get(f"/v1/adapters/{first['id']}"), 404, "not_found")
    assert_error(other_tenant.http.delete(f"/v1/adapters/{first['id']}"), 404, "not_found")
    assert_error(upload(other_tenant.http, cube, config(), adapter_bytes), 404, "not_found")


def _assert_nothing_kept(tenant: TenantCtx, cube: str, live_server: LiveServer, data: bytes) -> None:
    everything = tenant.http.get(f"/v1/cubes/{cube}/adapters", params={"include_deleted": True})
    assert everything.json()["adapters"] == []
    sha = hashlib.sha256(data).hexdigest()
    assert not (live_server.settings.adapter_dir / sha[:2] / f"{sha}.safetensors").exists()


def test_rejected_uploads_keep_nothing(tenant: TenantCtx, cube: str, lm: HFCausalLM,
                                       live_server: LiveServer) -> None:
    tensors = lora_tensors(lm, seed=7)
    data = save(tensors)

    e = assert_error(upload(tenant.http, cube, config(base="meta-llama/Llama-3.2-1B"), data), 409, "conflict")
    assert e["details"]["adapter_base_model"] == "meta-llama/Llama-3.2-1B"
    assert e["details"]["model_id"] == "smollm2-135m-instruct"

    renamed = {k.replace("base_model.model.", "model.", 1) if i == 0 else k: v
               for i, (k, v) in enumerate(tensors.items())}
    e = assert_error(upload(tenant.http, cube, config(), renamed), 422, "invalid_input")
    assert e["details"]["tensor"] == "model.model.layers.0.self_attn.q_proj.lora_A.weight"

    missing = {k.replace("layers.0.", "layers.99.") if i == 0 else k: v for i, (k, v) in enumerate(tensors.items())}
    e = assert_error(upload(tenant.http, cube, config(), missing), 422, "invalid_input")
    assert "no Linear module 'model.layers.99.self_attn.q_proj'" in e["message"]

    key = "base_model.model.model.layers.3.self_attn.v_proj.lora_B.weight"
    assert tuple(tensors[key].shape) == (192, 4)
    e = assert_error(upload(tenant.http, cube, config(), {**tensors, key: torch.zeros(576, 4)}), 422, "invalid_input")
    assert e["details"] == {"field": "adapter_model", "tensor": key, "shape": [576, 4], "expected": [192, 4]}

    e = assert_error(upload(tenant.http, cube, config(rank=8), data), 422, "invalid_input")
    assert e["details"]["expected"] == [8, 576]
    e = assert_error(upload(tenant.http, cube, config(targets=("q_proj",)), data), 422, "invalid_input")
    assert "outside target_modules" in e["message"]
    e = assert_error(upload(tenant.http, cube, config(targets=("q_proj", "v_proj", "nope")), data), 422,
                     "invalid_input")
    assert e["details"]["target_modules"] == ["nope"]
    half = {k: v for k, v in tensors.items() if not k.endswith("layers.5.self_attn.q_proj.lora_B.weight")}
    e = assert_error(upload(tenant.http, cube, config(), half), 422, "invalid_input")
    assert e["details"]["modules"] == ["model.layers.5.self_attn.q_proj"]

    assert_error(upload(tenant.http, cube, b"{not json", data), 422, "invalid_input")
    assert_error(upload(tenant.http, cube, config(peft_type="IA3"), data), 422, "invalid_input")
    e = assert_error(upload(tenant.http, cube, config(lora_alpha=2.5), data), 422, "invalid_input")
    assert e["details"] == {"field": "adapter_config", "key": "lora_alpha"}
    e = assert_error(upload(tenant.http, cube, config(), b"\x10\x00\x00\x00\x00\x00\x00\x00{}"), 422, "invalid_input")
    assert e["details"] == {"field": "adapter_model"}
    assert_error(upload(tenant.http, cube, config(), data[:-10]), 422, "invalid_input")
    _assert_nothing_kept(tenant, cube, live_server, data)


def test_over_the_size_limit_is_413(databases: Databases, tmp_path_factory: pytest.TempPathFactory,
                                    lm: HFCausalLM) -> None:
    settings = make_settings(databases, tmp_path_factory.mktemp("small"), adapter_max_bytes=100_000)
    data = save(lora_tensors(lm))
    assert len(data) > 100_000
    with server(settings) as admin:
        key = admin.post("/v1/tenants", json={"name": "t"}).json()["api_key"]
        admin.headers["Authorization"] = f"Bearer {key}"
        cube = admin.post("/v1/cubes", json={"name": "c"}).json()["id"]
        e = assert_error(upload(admin, cube, config(), data), 413, "payload_too_large")
        assert e["details"] == {"bytes": len(data), "limit": 100_000}
        assert admin.get(f"/v1/cubes/{cube}/adapters", params={"include_deleted": True}).json()["adapters"] == []
        assert not settings.adapter_dir.exists() or not any(settings.adapter_dir.rglob("*.safetensors"))
