"""The tiered store below HTTP, on the real model: budgets, promotion, immutability, quality, GPU tier."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import torch

from app.activation import kv
from app.activation.generate import generate, prefill
from app.activation.model import HFCausalLM
from app.activation.store import Budgets, TieredKVStore
from tests.activation.conftest import CONTEXT

TENANT, CUBE = uuid.uuid4(), uuid.uuid4()


def _store(
    lm: HFCausalLM,
    root: Path,
    *,
    gpu: int = 0,
    cpu: int = 10**9,
    disk: int = 10**9,
    precision: str = "native",
    device: torch.device | None = None,
) -> TieredKVStore:
    return TieredKVStore(
        root=root,
        fingerprint=lm.fingerprint.key,
        budgets=Budgets(gpu, cpu, disk),
        precision=kv.resolve_precision(precision, lm.dtype),
        native=lm.dtype,
        device=device or lm.device,
    )


def _prefix(lm: HFCausalLM, n: int) -> list[int]:
    """A prefix of exactly ``n`` tokens, distinct per ``n``."""
    ids = lm.encode(f"Memory number {n}. " + CONTEXT * 4)
    return ids[:n]


def test_lru_demotion_and_eviction_respect_every_budget(lm: HFCausalLM, tmp_path: Path) -> None:
    per_entry = int(kv.bytes_per_token(lm.layers, lm.kv_heads, lm.head_dim, "float32")) * 40
    store = _store(lm, tmp_path, cpu=per_entry + per_entry // 2, disk=2 * per_entry + 3 * 64 * 1024)
    ids = [uuid.uuid4() for _ in range(3)]
    for i, entry_id in enumerate(ids):
        store.add(entry_id, TENANT, CUBE, _prefix(lm, 40 - i), prefill(lm, _prefix(lm, 40 - i)))
        assert store.used("cpu") <= store.budgets.cpu and store.used("disk") <= store.budgets.disk
    first, second, third = (store.get(i) for i in ids)
    assert first is None  # demoted off the CPU tier, then off the disk tier: evicted
    assert second is not None and second.tier == "disk"
    assert third is not None and third.tier == "cpu" and third.disk_bytes  # written through to disk
    assert not store.path(ids[0]).exists()
    assert store.counters[TENANT].evictions == 1

    # Use promotes the disk entry to the CPU tier, which demotes the other one.
    checkout = store.checkout(ids[1], 20)
    assert checkout is not None and checkout.tier == "disk" and checkout.layers[0][0].shape[-2] == 20
    assert store.get(ids[1]).tier == "cpu" and store.get(ids[2]).tier == "disk"  # type: ignore[union-attr]
    assert store.used("cpu") <= store.budgets.cpu and store.used("disk") <= store.budgets.disk
    changes = {c.id: c.tier for c in store.changes()}
    assert changes[ids[0]] is None and changes[ids[1]] == "cpu" and changes[ids[2]] == "disk"


def test_a_tenant_filling_a_tier_does_not_demote_another_tenants_cache(lm: HFCausalLM, tmp_path: Path) -> None:
    per_entry = int(kv.bytes_per_token(lm.layers, lm.kv_heads, lm.head_dim, "float32")) * 40
    store = _store(lm, tmp_path, cpu=3 * per_entry + per_entry // 2)
    other = uuid.uuid4()
    kept = store.add(uuid.uuid4(), other, CUBE, _prefix(lm, 40), prefill(lm, _prefix(lm, 40)))
    flood = [uuid.uuid4() for _ in range(4)]
    for i, entry_id in enumerate(flood):  # the 3rd and 4th do not fit beside the others: TENANT's own make room
        store.add(entry_id, TENANT, CUBE, _prefix(lm, 39 - i), prefill(lm, _prefix(lm, 39 - i)))
        assert store.used("cpu") <= store.budgets.cpu
    assert store.get(kept.id).tier == "cpu"  # type: ignore[union-attr]
    assert [store.get(i).tier for i in flood] == ["disk", "disk", "cpu", "cpu"]  # type: ignore[union-attr]
    assert store.counters[TENANT].demotions == 2 and store.counters[other].demotions == 0
    # The other tenant's next entry takes room from the largest holder, TENANT, not from itself.
    second = store.add(uuid.uuid4(), other, CUBE, _prefix(lm, 35), prefill(lm, _prefix(lm, 35)))
    assert (store.get(kept.id).tier, second.tier) == ("cpu", "cpu")  # type: ignore[union-attr]
    assert [store.get(i).tier for i in flood] == ["disk", "disk", "disk", "cpu"]  # type: ignore[union-attr]


def test_a_tenant_share_caps_what_one_tenant_holds_in_a_tier(lm: HFCausalLM, tmp_path: Path) -> None:
    per_entry = int(kv.bytes_per_token(lm.layers, lm.kv_heads, lm.head_dim, "float32")) * 40
    store = TieredKVStore(root=tmp_path, fingerprint=lm.fingerprint.key,
                          budgets=Budgets(0, 4 * per_entry + per_entry // 2, 10**9, tenant_share=0.5),
                          precision=kv.resolve_precision("native", lm.dtype), native=lm.dtype, device=lm.device)
    ids = [uuid.uuid4() for _ in range(3)]
    for i, entry_id in enumerate(ids):  # the tier has room for four, the tenant for two
        store.add(entry_id, TENANT, CUBE, _prefix(lm, 40 - i), prefill(lm, _prefix(lm, 40 - i)))
    assert [store.get(i).tier for i in ids] == ["disk", "cpu", "cpu"]  # type: ignore[union-attr]
    assert store.used("cpu", TENANT) <= store.budgets.cpu // 2


def test_a_restart_keeps_the_disk_tier(lm: HFCausalLM, tmp_path: Path) -> None:
    ids = _prefix(lm, 30)
    entry_id = uuid.uuid4()
    first = _store(lm, tmp_path)
    first.add(entry_id, TENANT, CUBE, ids, prefill(lm, ids))
    expected = generate(lm, ids + lm.encode(" Alice"), first.checkout(entry_id, 30).layers, 30, 4)  # type: ignore[union-attr]

    again = _store(lm, tmp_path)  # a new process: nothing in memory
    assert again.register(entry_id, TENANT, CUBE, ids, 0.0, 0)
    assert again.get(entry_id).tier == "disk"  # type: ignore[union-attr]
    match = again.match(TENANT, CUBE, ids + lm.encode(" Alice"), 16)
    assert match is not None and match[1] == 30
    checkout = again.checkout(entry_id, 30)
    assert checkout is not None and checkout.tier == "disk"
    got = generate(lm, ids + lm.encode(" Alice"), checkout.layers, 30, 4)
    assert got.token_ids == expected.token_ids

    # A file written for another model is not adopted.
    other = TieredKVStore(
        root=tmp_path,
        fingerprint="0" * 64,
        budgets=Budgets(0, 10**9, 10**9),
        precision="float32",
        native=lm.dtype,
        device=lm.device,
    )
    assert not other.register(entry_id, TENANT, CUBE, ids, 0.0, 0)


def test_generation_never_mutates_the_stored_cache(lm: HFCausalLM, tmp_path: Path) -> None:
    ids = _prefix(lm, 32)
    store = _store(lm, tmp_path)
    entry = store.add(uuid.uuid4(), TENANT, CUBE, ids, prefill(lm, ids))
    assert entry.cpu is not None
    before = {k: t.clone() for k, t in entry.cpu.tensors.items()}
    for n in (32, 20):
        checkout = store.checkout(entry.id, n)
        assert checkout is not None
        generate(lm, ids[:n] + lm.encode(" and then"), checkout.layers, n, 5)
    assert entry.cpu.tokens == 32
    assert all(torch.equal(before[k], t) for k, t in entry.cpu.tensors.items())


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
def test_quantised_tiers_keep_greedy_outputs(lm: HFCausalLM, tmp_path: Path, precision: str) -> None:
    """Smaller precisions against the full-precision cache: same greedy tokens, a small logit gap."""
    prefix = lm.encode(f"<|im_start|>system\n{CONTEXT}<|im_end|>\n")
    prompt = prefix + lm.encode("<|im_start|>user\nWhere does Alice live?<|im_end|>\n<|im_start|>assistant\n")
    full = generate(lm, prompt, prefill(lm, prefix), len(prefix), 8)
    store = _store(lm, tmp_path, precision=precision)
    entry = store.add(uuid.uuid4(), TENANT, CUBE, prefix, prefill(lm, prefix))
    assert entry.cpu is not None and entry.cpu.precision == precision
    per_token = kv.bytes_per_token(lm.layers, lm.kv_heads, lm.head_dim, precision)
    assert entry.cpu.nbytes == per_token * len(prefix)
    checkout = store.checkout(entry.id, len(prefix))
    assert checkout is not None
    small = generate(lm, prompt, checkout.layers, len(prefix), 8)
    assert small.token_ids == full.token_ids
    assert float((small.first_logits - full.first_logits).abs().max()) < 0.5


def test_gpu_tier(lm: HFCausalLM, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: the GPU tier is only exercised on a machine with one")
    ids = _prefix(lm, 24)
    layers = [(k.cuda(), v.cuda()) for k, v in prefill(lm, ids)]
    per_entry = sum(k.numel() * k.element_size() * 2 for k, _ in layers)
    store = _store(lm, tmp_path, gpu=per_entry + 1, device=torch.device("cuda"))
    a, b = uuid.uuid4(), uuid.uuid4()
    store.add(a, TENANT, CUBE, ids, layers)
    assert store.get(a).tier == "gpu"  # type: ignore[union-attr]
    store.add(b, TENANT, CUBE, ids[:20], [(k[..., :20, :], v[..., :20, :]) for k, v in layers])
    assert store.get(b).tier == "gpu" and store.get(a).tier == "cpu"  # type: ignore[union-attr]
    assert store.get(a).cpu.tensors["k.0"].is_pinned()  # type: ignore[union-attr]
    checkout = store.checkout(a, 24)
    assert checkout is not None and checkout.tier == "cpu" and checkout.layers[0][0].is_cuda
    assert store.get(a).tier == "gpu" and store.used("gpu") <= store.budgets.gpu  # type: ignore[union-attr]
