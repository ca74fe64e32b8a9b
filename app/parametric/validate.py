"""Checking an adapter before anything of it is kept: its peft config, its safetensors header, and every LoRA
weight against the base model's own modules. A file that loads but does not fit would fail (or silently do
nothing) at generation time; here it is a 422 at upload instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.activation.kv import HeaderError, parse_header
from app.errors import Conflict, InvalidInput, PayloadTooLarge

PEFT_PREFIX = "base_model.model."
_LORA_NAME = re.compile(r"^base_model\.model\.(?P<module>[\w.]+)\.lora_(?P<part>[AB])\.weight$")
_DTYPES = frozenset({"F32", "F16", "BF16"})


class AdapterRow(Protocol):
    """What ``adapter_config`` needs of a stored adapter (the ``Adapter`` model has it)."""

    @property
    def base_model(self) -> str: ...

    @property
    def rank(self) -> int: ...

    @property
    def alpha(self) -> int: ...

    @property
    def target_modules(self) -> list[str]: ...


@dataclass(frozen=True)
class BaseModelInfo:
    """The base model an adapter must fit: its id (and accepted aliases), fingerprint, and Linear shapes."""

    model_id: str
    fingerprint: str
    aliases: frozenset[str]
    linear: Mapping[str, tuple[int, int]]
    """Module path (as in ``named_modules``) → (in_features, out_features) of every Linear."""

    def accepts(self, name: str) -> bool:
        """A peft ``base_model_name_or_path`` names this model: its id, or a hub-style ``org/Name`` alias."""
        last = name.rstrip("/").rsplit("/", 1)[-1].lower()
        return last in self.aliases


@dataclass(frozen=True)
class LoraSpec:
    rank: int
    alpha: int
    target_modules: list[str]
    base_model: str


def adapter_config(row: AdapterRow) -> dict[str, Any]:
    """The peft ``adapter_config.json`` of a stored adapter, regenerated from its row (the row is the truth)."""
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": row.base_model,
        "r": row.rank,
        "lora_alpha": row.alpha,
        "lora_dropout": 0.0,
        "target_modules": sorted(row.target_modules),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
    }


def parse_config(raw: bytes | Mapping[str, Any]) -> LoraSpec:
    """The LoRA settings of a peft ``adapter_config.json``; anything peft would attach differently is refused."""
    if isinstance(raw, Mapping):
        cfg: Any = dict(raw)
    else:
        try:
            cfg = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"adapter_config is not JSON: {exc}", {"field": "adapter_config"}) from exc
    if not isinstance(cfg, dict):
        raise InvalidInput("adapter_config must be a JSON object", {"field": "adapter_config"})

    def bad(message: str, key: str) -> InvalidInput:
        return InvalidInput(f"adapter_config: {message}", {"field": "adapter_config", "key": key})

    if str(cfg.get("peft_type", "")).upper() != "LORA":
        raise bad("only LoRA adapters are supported (peft_type must be LORA)", "peft_type")
    rank, alpha = cfg.get("r"), cfg.get("lora_alpha", cfg.get("r"))
    if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= 256:
        raise bad("r must be an integer from 1 to 256", "r")
    if (not isinstance(alpha, int | float) or isinstance(alpha, bool) or not float(alpha).is_integer()
            or not 0 < alpha <= 4096):
        raise bad("lora_alpha must be a whole number from 1 to 4096", "lora_alpha")
    targets = cfg.get("target_modules")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise bad("target_modules must be a non-empty list of module names", "target_modules")
    base = cfg.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise bad("base_model_name_or_path is required", "base_model_name_or_path")
    for key in ("use_dora", "use_rslora"):
        if cfg.get(key):
            raise bad(f"{key} is not supported", key)
    if cfg.get("bias", "none") != "none" or cfg.get("modules_to_save"):
        raise bad("bias and modules_to_save are not supported (only LoRA weights are)", "bias")
    return LoraSpec(rank=rank, alpha=int(alpha), target_modules=sorted(set(targets)), base_model=base)


def safetensors_header(data: bytes) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name → (dtype, shape) from a safetensors file's header, with its offsets checked against the data."""
    try:
        entries, _ = parse_header(data)
    except HeaderError as exc:
        raise InvalidInput(f"adapter_model is not a valid safetensors file: {exc}", {"field": "adapter_model"}) from exc
    for name, (dtype, _) in entries.items():
        if dtype not in _DTYPES:
            raise InvalidInput(f"tensor {name!r} has dtype {dtype}; use F32, F16 or BF16",
                               {"field": "adapter_model", "tensor": name})
    return entries


def validate_adapter(config: bytes | Mapping[str, Any], tensors: bytes, base: BaseModelInfo | None,
                     max_bytes: int) -> LoraSpec:
    """Everything an adapter is checked for before any of it is kept, for an upload, a distillation and an
    archive import alike: size (413), config, the file parsed, and its tensors against the base model (422;
    409 when it names another base model). Without ``base`` (an archived adapter of a model this server does
    not run, which generation refuses anyway) the tensors are checked against the config alone."""
    if len(tensors) > max_bytes:
        raise PayloadTooLarge(f"the adapter is {len(tensors)} bytes; the limit is {max_bytes}",
                              {"bytes": len(tensors), "limit": max_bytes})
    spec = parse_config(config)
    header = safetensors_header(tensors)
    if base is None:
        check_tensors(spec, header, None)
    else:
        check_fits(spec, header, base)
    return spec


def check_fits(spec: LoraSpec, tensors: Mapping[str, tuple[str, tuple[int, ...]]], base: BaseModelInfo) -> None:
    """Base model first (409: the adapter is fine, just for another model), then names and shapes (422)."""
    if not base.accepts(spec.base_model):
        raise Conflict(
            f"the adapter was trained for {spec.base_model!r}; this server runs {base.model_id!r}",
            {"adapter_base_model": spec.base_model, "model_id": base.model_id, "fingerprint": base.fingerprint},
        )
    leaves = {path.rsplit(".", 1)[-1] for path in base.linear}
    unknown = [t for t in spec.target_modules if t not in leaves]
    if unknown:
        raise InvalidInput(f"target_modules {unknown} are not Linear modules of {base.model_id}",
                           {"field": "adapter_config", "target_modules": unknown})
    check_tensors(spec, tensors, base)


def check_tensors(spec: LoraSpec, tensors: Mapping[str, tuple[str, tuple[int, ...]]],
                  base: BaseModelInfo | None) -> None:
    """Every tensor a LoRA weight of a target module, of the config's rank, A and B in pairs; with ``base``,
    of a Linear module the base model has, in exactly its shape."""
    parts: dict[str, set[str]] = {}
    for name, (_, shape) in tensors.items():
        m = _LORA_NAME.match(name)
        if m is None:
            raise InvalidInput(f"tensor {name!r} is not a LoRA weight ('{PEFT_PREFIX}<module>.lora_A|B.weight')",
                               {"field": "adapter_model", "tensor": name})
        module, part = m["module"], m["part"]
        if base is not None and module not in base.linear:
            raise InvalidInput(f"tensor {name!r}: the base model has no Linear module {module!r}",
                               {"field": "adapter_model", "tensor": name})
        if module.rsplit(".", 1)[-1] not in spec.target_modules:
            raise InvalidInput(f"tensor {name!r} is for a module outside target_modules",
                               {"field": "adapter_model", "tensor": name})
        if base is not None:
            fan_in, fan_out = base.linear[module]
            want = (spec.rank, fan_in) if part == "A" else (fan_out, spec.rank)
        else:  # the rank side only: the other is the base model's, unknown here
            want = (spec.rank, shape[1] if len(shape) == 2 else -1) if part == "A" else (
                shape[0] if len(shape) == 2 else -1, spec.rank)
        if shape != want:
            raise InvalidInput(f"tensor {name!r} has shape {list(shape)}; the base model needs {list(want)}",
                               {"field": "adapter_model", "tensor": name, "shape": list(shape),
                                "expected": list(want)})
        parts.setdefault(module, set()).add(part)
    half = sorted(m for m, p in parts.items() if p != {"A", "B"})
    if half:
        raise InvalidInput(f"modules {half[:5]} have lora_A without lora_B or the reverse",
                           {"field": "adapter_model", "modules": half[:20]})
