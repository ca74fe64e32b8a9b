"""Parametric memory through both clients on the live server: upload, versions, soft delete and restore,
generation with an adapter, and a distillation job."""

from __future__ import annotations

import json
from pathlib import Path

import memcubed
import pytest
from safetensors.torch import save

from app.activation.model import HFCausalLM
from tests.parametric.conftest import config, lm, lora_tensors
from tests.sdk.sdk_helpers import ADAPTER_ID, CUBE_ID, Recorder

__all__ = ["lm"]  # the session model fixture, shared with tests/parametric


def test_adapters_sync(live_client: memcubed.Client, lm: HFCausalLM) -> None:
    client = live_client
    cube = client.cubes.create("params")
    weights = save(lora_tensors(lm, seed=3))
    first = client.adapters.upload(cube.id, config(), weights, name="style")
    assert (first.name, first.version, first.rank, first.source, first.status) == ("style", 1, 4, "upload", "active")
    assert first.size_bytes == len(weights) and first.target_modules == ["q_proj", "v_proj"]
    second = client.adapters.upload(cube.id, config(), weights, name="style")
    assert second.version == 2 and second.sha256 == first.sha256
    assert client.adapters.get(first.id) == first

    with pytest.raises(memcubed.ConflictError):
        client.adapters.upload(cube.id, config(base="other/Model-7B"), weights)
    with pytest.raises(memcubed.ValidationError):
        client.adapters.upload(cube.id, config(rank=8), weights)

    base = client.generate("The capital of France is", max_new_tokens=4)
    tuned = client.generate("The capital of France is", max_new_tokens=4, adapter_ids=[first.id])
    assert tuned.adapter_ids == [first.id] and base.adapter_ids == []
    assert tuned.fingerprint != base.fingerprint and tuned.token_ids != base.token_ids

    assert client.adapters.delete(first.id).status == "deleted"
    assert [a.id for a in client.adapters.list(cube.id)] == [second.id]
    assert [a.version for a in client.adapters.list(cube.id, include_deleted=True)] == [1, 2]
    assert client.adapters.restore(first.id).status == "active"

    for fact in ("Ada Vesk lives in Brno.", "Ivo Marr lives in Split.", "Lena Holt lives in Turku."):
        client.memories.add(cube.id, fact)
    job = client.adapters.distill(cube.id, name="facts", steps=1, rank=2)
    assert (job.kind, job.params) == ("distill", {"name": "facts", "steps": 1, "rank": 2})
    done = client.jobs.wait(job.id, timeout=900)
    assert done.status == "done", done.error
    made = client.adapters.get(done.result["adapter_id"])
    assert (made.name, made.version, made.source, made.rank, made.job_id) == ("facts", 1, "distill", 2, job.id)
    assert made.metrics["steps"] == 1 and made.metrics["train_memories"] == 2


async def test_adapters_async(live_aclient: memcubed.AsyncClient, lm: HFCausalLM) -> None:
    client = live_aclient
    cube = await client.cubes.create("params-async")
    up = await client.adapters.upload(cube.id, config(), save(lora_tensors(lm, seed=4)))
    assert (up.name, up.version) == ("adapter", 1)
    assert (await client.adapters.get(up.id)).sha256 == up.sha256
    assert [a.id for a in await client.adapters.list(cube.id)] == [up.id]
    assert (await client.adapters.delete(up.id)).status == "deleted"
    assert (await client.adapters.restore(up.id)).status == "active"
    with pytest.raises(memcubed.ValidationError):
        await client.adapters.distill(cube.id)  # the cube has no memories
    out = await client.generate("Hello", max_new_tokens=2, adapter_ids=[up.id])
    assert out.adapter_ids == [up.id]


def test_upload_is_one_multipart_request(mock_client: memcubed.Client, recorder: Recorder,
                                         tmp_path: Path) -> None:
    weights = tmp_path / "adapter_model.safetensors"
    weights.write_bytes(b"tensor bytes")
    out = mock_client.adapters.upload(CUBE_ID, {"r": 4, "peft_type": "LORA"}, weights, name="style")
    assert out.id == ADAPTER_ID and out.target_modules == ["q_proj", "v_proj"]
    (request,) = recorder.requests
    assert (request.method, request.url.path) == ("POST", f"/v1/cubes/{CUBE_ID}/adapters")
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = request.content
    assert b'name="adapter_config"; filename="adapter_config.json"' in body
    assert b'{"r": 4, "peft_type": "LORA"}' in body
    assert b'name="adapter_model"; filename="adapter_model.safetensors"' in body and b"tensor bytes" in body
    assert b'name="name"\r\n\r\nstyle' in body
    job = mock_client.adapters.distill(CUBE_ID, steps=5, memory_filter={"tag": "facts"})
    assert job.kind == "distill"
    assert json.loads(recorder.requests[1].content) == {"steps": 5, "memory_filter": {"tag": "facts"}}
