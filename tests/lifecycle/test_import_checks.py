"""Import = upload: an archive's embeddings, activation caches and adapters pass the checks a fresh write or an
upload passes. Each tampered archive below is built from a real cube's archive (hashes recomputed, as a forger
would) and refused whole with a 422 naming the item: no row in any table, no file left in the data dir."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from safetensors.torch import load, save

from app.activation.fingerprint import pack_tokens, token_hash
from app.activation.kv import parse_header
from app.activation.model import HFCausalLM
from tests.conftest import Json, LiveServer, TenantCtx, add_memories, assert_error, make_cube, new_tenant, sql
from tests.lifecycle.helpers import import_archive, members, rebuild
from tests.parametric.conftest import config, lm, lora_tensors, upload  # noqa: F401 - lm is a fixture

TABLES = ("cubes", "memories", "adapters", "activations")
Files = dict[str, bytes]


@pytest.fixture(scope="module")
def source(live_server: LiveServer, admin: httpx.Client, lm: HFCausalLM) -> Iterator[tuple[Files, Json]]:  # noqa: F811
    """A cube with memories, an uploaded adapter and an activation cache of this server's model, archived."""
    t = new_tenant(live_server, admin)
    cube = make_cube(t, "honest")
    add_memories(t, cube, "Priya is vegetarian", "The weekly sync is on Tuesdays", "Alice moved to Berlin in 2021")
    r = upload(t.http, cube, config(), lora_tensors(lm, seed=21), name="style")
    assert r.status_code == 201, r.text
    r = t.http.post(f"/v1/cubes/{cube}/activations", json={"text": "Alice is allergic to peanuts."})
    assert r.status_code == 201, r.text
    r = t.http.get(f"/v1/cubes/{cube}/archive")
    assert r.status_code == 200, r.text
    files = members(r.content)
    manifest = json.loads(files.pop("manifest.json"))
    assert manifest["counts"]["adapters"] == manifest["counts"]["activations"] == 1
    yield files, manifest
    t.http.close()


def on_disk(live_server: LiveServer) -> set[Path]:
    s = live_server.settings
    return {p for root in (s.adapter_dir, s.activation_dir) if root.exists() for p in root.rglob("*") if p.is_file()}


def rows(live_server: LiveServer, tenant_id: str) -> list[int]:
    url = live_server.settings.database_url or ""
    return [sql(url, f"select count(*) from {table} where tenant_id = %s", (tenant_id,))[0][0] for table in TABLES]


def line(files: Files, name: str, n: int = 0) -> Json:
    return dict(json.loads(files[name].splitlines()[n]))


def put_line(files: Files, name: str, row: Json, n: int = 0) -> None:
    lines = files[name].splitlines()
    lines[n] = json.dumps(row).encode()
    files[name] = b"\n".join(lines) + b"\n"


def swap_adapter_file(files: Files, data: bytes) -> None:
    """The adapter's file replaced by ``data``, its row and member name following (as a forger would)."""
    import hashlib

    row = line(files, "adapters.jsonl")
    del files[f"adapters/{row['sha256']}.safetensors"]
    row["sha256"], row["size_bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    files[f"adapters/{row['sha256']}.safetensors"] = data
    put_line(files, "adapters.jsonl", row)


def set_embedding(files: Files, vec: np.ndarray) -> None:
    row = line(files, "memories.jsonl")
    row["embedding"] = base64.b64encode(vec.astype(np.float32).tobytes()).decode()
    put_line(files, "memories.jsonl", row)


def embedding(files: Files) -> np.ndarray:
    return np.frombuffer(base64.b64decode(line(files, "memories.jsonl")["embedding"]), dtype=np.float32).copy()


def stale_activation(ids: list[int]) -> bytes:
    return (json.dumps({
        "id": "00000000-0000-0000-0000-00000000000b", "model_id": "some-other-lm", "fingerprint": "ab" * 32,
        "token_hash": token_hash(ids), "tokens": len(ids), "token_ids": base64.b64encode(pack_tokens(ids)).decode(),
        "source": "text", "prefix_text": "forged", "precision": "float16", "hits": 0,
        "created_at": "2024-01-02T03:04:05Z", "file": None}) + "\n").encode()


def kv_edit(files: Files, edit: Callable[[dict[str, torch.Tensor], dict[str, str]], None]) -> None:
    member = line(files, "activations.jsonl")["file"]
    tensors = load(files[member])
    _, meta = parse_header(files[member])
    edit(tensors, meta)
    files[member] = save(tensors, metadata=meta)


def tamper(case: str, files: Files, manifest: Json, lm: HFCausalLM) -> str:  # noqa: F811
    """Apply ``case``; returns what the error message must name."""
    adapter = line(files, "adapters.jsonl")
    activation = line(files, "activations.jsonl")
    if case == "giant_rank":
        put_line(files, "adapters.jsonl", {**adapter, "rank": 2**31 - 1})
        return "adapter 'style' v1: adapter_config: r must be an integer from 1 to 256"
    if case == "unknown_target":
        put_line(files, "adapters.jsonl", {**adapter, "target_modules": ["q_proj", "v_proj", "nope"]})
        return "adapter 'style' v1: target_modules ['nope'] are not Linear modules"
    if case == "rank_not_the_files":
        put_line(files, "adapters.jsonl", {**adapter, "rank": 8})
        return "the base model needs [8, 576]"
    if case == "corrupt_adapter":
        swap_adapter_file(files, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json} and some bytes")
        return "adapter_model is not a valid safetensors file: header is not JSON"
    if case == "adapter_shape":
        tensors = lora_tensors(lm, seed=21)
        key = "base_model.model.model.layers.3.self_attn.v_proj.lora_B.weight"
        swap_adapter_file(files, save({**tensors, key: torch.zeros(576, 4)}))
        return f"tensor {key!r} has shape [576, 4]"
    if case == "adapter_size_lies":
        put_line(files, "adapters.jsonl", {**adapter, "size_bytes": 12})
        return "size_bytes is 12"
    if case == "repeated_adapter":
        files["adapters.jsonl"] += json.dumps(adapter).encode() + b"\n"
        manifest["counts"]["adapters"] += 1
        return "adapters.jsonl repeats an adapter name and version"
    if case in ("huge_token_list", "negative_token_id"):
        ids = list(range(1, 5002)) if case == "huge_token_list" else [5, -1, 7]
        files["activations.jsonl"] += stale_activation(ids)
        manifest["counts"]["activations"] += 1
        return ("activation 00000000-0000-0000-0000-00000000000b: the prefix is 5001 tokens; the limit is 4096"
                if case == "huge_token_list" else "token ids must be from 0 to")
    if case == "token_id_outside_vocabulary":
        ids = [1, 2, lm.vocab_size]
        put_line(files, "activations.jsonl", {**activation, "token_ids": base64.b64encode(pack_tokens(ids)).decode(),
                                              "tokens": 3, "token_hash": token_hash(ids)})
        return f"token ids must be from 0 to {lm.vocab_size - 1}"
    if case == "text_not_its_tokens":
        put_line(files, "activations.jsonl", {**activation, "prefix_text": "Bob is allergic to peanuts."})
        return "its token ids are not its text's tokens"
    if case == "kv_layer_missing":
        def drop(t: dict[str, torch.Tensor], _: dict[str, str]) -> None:
            del t[f"v.{lm.layers - 1}"]
        kv_edit(files, drop)
        return f"tensor 'v.{lm.layers - 1}' is None"
    if case == "kv_wrong_heads":
        def heads(t: dict[str, torch.Tensor], _: dict[str, str]) -> None:
            t["k.0"] = torch.cat([t["k.0"], t["k.0"]], dim=1)
        kv_edit(files, heads)
        return "tensor 'k.0'"
    if case == "kv_fewer_tokens":
        def crop(t: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
            for name in list(t):
                t[name] = t[name][..., :2, :].contiguous()
            meta["tokens"] = "2"
        kv_edit(files, crop)
        return "the file holds"
    if case == "nan_vector":
        vec = embedding(files)
        vec[3] = np.nan
        set_embedding(files, vec)
        return "memories.jsonl line 1: the embedding holds NaN or infinity"
    if case == "not_unit_vector":
        set_embedding(files, embedding(files) * 3)
        return "memories.jsonl line 1: the embedding has norm 3"
    assert case == "wrong_dim_vector"
    set_embedding(files, embedding(files)[:-1])
    return "memories.jsonl holds embeddings of the wrong size"


CASES = ["giant_rank", "unknown_target", "rank_not_the_files", "corrupt_adapter", "adapter_shape",
         "adapter_size_lies", "repeated_adapter", "huge_token_list", "negative_token_id", "token_id_outside_vocabulary",
         "text_not_its_tokens", "kv_layer_missing", "kv_wrong_heads", "kv_fewer_tokens", "nan_vector",
         "not_unit_vector", "wrong_dim_vector"]


@pytest.mark.parametrize("case", CASES)
def test_a_tampered_archive_is_refused_and_nothing_is_written(live_server: LiveServer, other_tenant: TenantCtx,
                                                              source: tuple[Files, Json], lm: HFCausalLM,  # noqa: F811
                                                              case: str) -> None:
    files, manifest = dict(source[0]), json.loads(json.dumps(source[1]))
    named = tamper(case, files, manifest, lm)
    before = on_disk(live_server)
    error = assert_error(import_archive(other_tenant, rebuild(files, manifest)), 422, "invalid_input")
    assert error["message"].startswith("archive rejected: ")
    assert named in error["message"], error["message"]
    assert rows(live_server, other_tenant.id) == [0, 0, 0, 0]
    assert on_disk(live_server) == before


def test_the_untampered_archive_imports_whole(live_server: LiveServer, other_tenant: TenantCtx,
                                              source: tuple[Files, Json]) -> None:
    """The control: the same checks pass a real archive, whose cache is adopted and adapter usable."""
    r = import_archive(other_tenant, rebuild(source[0], source[1]))
    assert r.status_code == 201, r.text
    assert r.json()["activations_stale"] == 0 and r.json()["embeddings"] == "reused"
    assert rows(live_server, other_tenant.id) == [1, 3, 1, 1]
    copy = r.json()["cube"]["id"]
    [adapter] = other_tenant.http.get(f"/v1/cubes/{copy}/adapters").json()["adapters"]
    r = other_tenant.http.post("/v1/generate", json={"prompt": "Who is allergic?", "cube_id": copy,
                                                     "adapter_ids": [adapter["id"]], "max_new_tokens": 2})
    assert r.status_code == 200, r.text


def test_files_of_an_import_whose_insert_fails_are_removed(live_server: LiveServer, other_tenant: TenantCtx,
                                                           source: tuple[Files, Json], lm: HFCausalLM  # noqa: F811
                                                           ) -> None:
    """A valid archive whose adapter file is new to this server, and an insert that fails (a trigger stands in
    for any database failure after the files were written): neither the adapter's nor the cache's file stays."""
    files, manifest = dict(source[0]), json.loads(json.dumps(source[1]))
    swap_adapter_file(files, save(lora_tensors(lm, seed=22)))
    before = on_disk(live_server)
    url = live_server.settings.database_url or ""
    sql(url, "create function fail_adapter_insert() returns trigger language plpgsql as "
             "$$ begin raise exception 'injected failure'; end $$")
    sql(url, "create trigger fail_adapter_insert before insert on adapters for each row "
             f"when (new.tenant_id = '{other_tenant.id}') execute function fail_adapter_insert()")
    try:
        r = import_archive(other_tenant, rebuild(files, manifest))
        assert r.status_code == 500, r.text
        assert rows(live_server, other_tenant.id) == [0, 0, 0, 0]
        assert on_disk(live_server) == before
        cube = make_cube(other_tenant, "uploads")  # an upload whose insert fails keeps no file either
        r = upload(other_tenant.http, cube, config(), lora_tensors(lm, seed=23))
        assert r.status_code == 500, r.text
        assert on_disk(live_server) == before
    finally:
        sql(url, "drop trigger fail_adapter_insert on adapters")
        sql(url, "drop function fail_adapter_insert()")
