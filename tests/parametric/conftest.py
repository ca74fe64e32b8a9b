"""Parametric memory tests run the real SmolLM2-135M on the CPU, from the converted copy the activation tests
keep (imported for its environment defaults), and build LoRA adapters of it with peft-style tensor names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import torch
from safetensors.torch import save

from app.activation.model import HFCausalLM, ModelSpec, load_model
from app.parametric.attach import linear_shapes
from tests.activation.conftest import MODELS_DIR

HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="session")
def lm() -> HFCausalLM:
    return load_model(ModelSpec(name="smollm2-135m-instruct", models_dir=MODELS_DIR, threads=1))


def lora_tensors(lm: HFCausalLM, rank: int = 4, targets: tuple[str, ...] = ("q_proj", "v_proj"),
                 seed: int = 0, scale: float = 0.2) -> dict[str, torch.Tensor]:
    """Random LoRA weights of the right names and shapes (B non-zero, so the adapter changes the output)."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for path, (fan_in, fan_out) in linear_shapes(lm.model).items():
        if path.rsplit(".", 1)[-1] in targets:
            a = torch.randn(rank, fan_in, generator=gen)
            b = torch.randn(fan_out, rank, generator=gen)
            out[f"base_model.model.{path}.lora_A.weight"] = a * scale
            out[f"base_model.model.{path}.lora_B.weight"] = b * scale
    return out


def config(rank: int = 4, targets: tuple[str, ...] = ("q_proj", "v_proj"), base: str = HUB_NAME,
           **extra: Any) -> dict[str, Any]:
    return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank,
            "target_modules": list(targets), "base_model_name_or_path": base, **extra}


def upload(http: httpx.Client, cube: str, cfg: dict[str, Any] | bytes, tensors: dict[str, torch.Tensor] | bytes,
           name: str | None = None) -> httpx.Response:
    raw_cfg = cfg if isinstance(cfg, bytes) else json.dumps(cfg).encode()
    raw = tensors if isinstance(tensors, bytes) else save(tensors)
    return http.post(f"/v1/cubes/{cube}/adapters",
                     files={"adapter_config": ("adapter_config.json", raw_cfg, "application/json"),
                            "adapter_model": ("adapter_model.safetensors", raw, "application/octet-stream")},
                     data={"name": name} if name else None)


@pytest.fixture(scope="session")
def adapter_bytes(lm: HFCausalLM) -> Iterator[bytes]:
    yield save(lora_tensors(lm))
