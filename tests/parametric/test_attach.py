"""The adapter LRU on the real model: an adapter is injected once, the least recently used one is dropped when
the LRU is full, and with no adapter active the logits are bit-identical to the untouched base model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from app.activation.model import HFCausalLM
from app.errors import Conflict
from app.parametric import attach
from app.parametric.attach import AdapterSlots, effective_fingerprint, tuner_layers
from app.parametric.files import AdapterFiles
from app.parametric.validate import LoraSpec
from tests.parametric.conftest import lora_tensors

SPEC = LoraSpec(rank=4, alpha=8, target_modules=["q_proj", "v_proj"], base_model="smollm2-135m-instruct")


def _logits(lm: HFCausalLM) -> torch.Tensor:
    return lm.forward(lm.start(None), lm.encode("Alice moved to Berlin in"))


def test_lru_loads_once_evicts_and_leaves_the_base_exact(lm: HFCausalLM, tmp_path: Path) -> None:
    files = AdapterFiles(tmp_path)
    first, second = (files.put(save(lora_tensors(lm, seed=s))) for s in (11, 12))
    base = _logits(lm)
    slots = AdapterSlots(files, capacity=1)

    with slots.active(lm, [(first, SPEC)]):
        with_first = _logits(lm)
    with slots.active(lm, [(first, SPEC)]):
        assert torch.equal(_logits(lm), with_first)
    assert slots.loads == 1 and slots.loaded() == [AdapterSlots.slot(first)]
    assert not torch.equal(with_first, base)
    assert torch.equal(_logits(lm), base)

    with slots.active(lm, [(second, SPEC)]):
        with_second = _logits(lm)
    assert slots.loads == 2 and slots.loaded() == [AdapterSlots.slot(second)]
    assert not torch.equal(with_second, with_first)
    assert torch.equal(_logits(lm), base)

    # Evicted and loaded again: the same weights, the same logits.
    with slots.active(lm, [(first, SPEC)]):
        assert torch.equal(_logits(lm), with_first)
    assert slots.loads == 3


def test_effective_fingerprint() -> None:
    base = "a" * 64
    assert effective_fingerprint(base, []) == base
    one = effective_fingerprint(base, ["1" * 64])
    both = effective_fingerprint(base, ["1" * 64, "2" * 64])
    assert len({base, one, both}) == 3
    assert both == effective_fingerprint(base, ["2" * 64, "1" * 64])
    assert one != effective_fingerprint("b" * 64, ["1" * 64])


def test_a_missing_file_is_a_conflict_and_leaves_the_base_exact(lm: HFCausalLM, tmp_path: Path) -> None:
    files = AdapterFiles(tmp_path)
    present = files.put(save(lora_tensors(lm, seed=13)))
    base = _logits(lm)
    slots = AdapterSlots(files, capacity=2)
    with pytest.raises(Conflict) as caught, slots.active(lm, [(present, SPEC), ("0" * 64, SPEC)]):
        pass
    assert caught.value.details == {"sha256": "0" * 64}
    assert slots.loaded() == [AdapterSlots.slot(present)]
    assert torch.equal(_logits(lm), base)


def _injected(lm: HFCausalLM) -> int:
    return sum(len(layer.lora_A) for layer in tuner_layers(lm.model))


@pytest.mark.parametrize("bad", ["giant_rank", "unknown_target", "fewer_targets", "corrupt_file", "wrong_base"])
def test_a_row_its_file_does_not_fit_is_refused_before_anything_is_injected(lm: HFCausalLM, tmp_path: Path,
                                                                           bad: str) -> None:
    """What an older server's archive could have stored: the row is checked against its file and the model
    before a LoRA of the row's rank is allocated."""
    files = AdapterFiles(tmp_path)
    good = files.put(save(lora_tensors(lm, seed=14)))
    sha, spec = good, SPEC
    if bad == "giant_rank":
        spec = LoraSpec(rank=2**31 - 1, alpha=8, target_modules=SPEC.target_modules, base_model=SPEC.base_model)
    elif bad == "unknown_target":
        spec = LoraSpec(rank=4, alpha=8, target_modules=["q_proj", "v_proj", "nope"], base_model=SPEC.base_model)
    elif bad == "fewer_targets":
        spec = LoraSpec(rank=4, alpha=8, target_modules=["q_proj"], base_model=SPEC.base_model)
    elif bad == "wrong_base":
        spec = LoraSpec(rank=4, alpha=8, target_modules=SPEC.target_modules, base_model="meta-llama/Llama-3.2-1B")
    else:
        sha = files.put(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    base = _logits(lm)
    before = _injected(lm)
    slots = AdapterSlots(files, capacity=2)
    with pytest.raises(Conflict) as caught, slots.active(lm, [(sha, spec)]):
        pass
    assert caught.value.message.startswith(f"adapter {sha[:12]} cannot be attached: ")
    assert caught.value.details == {"sha256": sha}
    assert slots.loaded() == [] and slots.loads == 0
    assert _injected(lm) == before
    assert torch.equal(_logits(lm), base)
    with slots.active(lm, [(good, SPEC)]):  # and the slots still work
        assert not torch.equal(_logits(lm), base)
    assert slots.loaded() == [AdapterSlots.slot(good)]


def test_a_load_that_fails_half_way_leaves_no_layer_behind(lm: HFCausalLM, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    files = AdapterFiles(tmp_path)
    sha = files.put(save(lora_tensors(lm, seed=15)))
    base = _logits(lm)
    before = _injected(lm)
    slots = AdapterSlots(files, capacity=2)

    def fail(*_: object) -> None:
        raise RuntimeError("disk went away half-way")

    monkeypatch.setattr(attach, "load_weights", fail)
    with pytest.raises(RuntimeError), slots.active(lm, [(sha, SPEC)]):
        pass
    assert slots.loaded() == [] and _injected(lm) == before
    assert AdapterSlots.slot(sha) not in getattr(lm.model, "peft_config", {})
    assert torch.equal(_logits(lm), base)
    monkeypatch.undo()
    with slots.active(lm, [(sha, SPEC)]):  # injected again from scratch, cleanly
        assert not torch.equal(_logits(lm), base)
    assert slots.loads == 1
