"""Attaching adapters to the one shared base model at generation time.

peft injects LoRA layers into the base model in place, several adapters side by side; each request picks
which are active, and with none the LoRA layers pass through to the untouched base weights (bit-identical
logits). Loaded adapters are kept in an LRU so a hot adapter is read and injected once; the least recently
used one is deleted from the layers when the LRU is full.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from app.activation.model import BUILTIN, HFCausalLM
from app.errors import Conflict, MemcubedError
from app.parametric.files import AdapterFiles
from app.parametric.validate import PEFT_PREFIX, BaseModelInfo, LoraSpec, check_fits


def effective_fingerprint(base_key: str, adapter_shas: Sequence[str]) -> str:
    """The fingerprint of base model + adapters: a KV cache is only valid for exactly the weights that built
    it, so the adapters' file hashes are part of the key (order-free: active adapters are summed)."""
    if not adapter_shas:
        return base_key
    raw = "\x00".join([base_key, *sorted(adapter_shas)])
    return hashlib.sha256(raw.encode()).hexdigest()


def tuner_layers(model: torch.nn.Module) -> list[Any]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def linear_shapes(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """Module path → (in, out) of every Linear of the *base* model, also once LoRA layers wrap some of them."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    out: dict[str, tuple[int, int]] = {}
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            module = module.get_base_layer()
        elif ".lora_" in name or name.endswith(".base_layer"):
            continue
        if isinstance(module, torch.nn.Linear):
            out[name] = (module.in_features, module.out_features)
    return out


def base_info(lm: HFCausalLM) -> BaseModelInfo:
    model_id = lm.fingerprint.model_id
    aliases = {model_id.lower()}
    if model_id in BUILTIN:
        aliases.add(BUILTIN[model_id][1].lower())
    return BaseModelInfo(model_id=model_id, fingerprint=lm.fingerprint.key, aliases=frozenset(aliases),
                         linear=linear_shapes(lm.model))


def lora_config(spec: LoraSpec) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=spec.rank, lora_alpha=spec.alpha, target_modules=list(spec.target_modules),
                      lora_dropout=0.0, bias="none")


def load_weights(model: torch.nn.Module, name: str, tensors: dict[str, torch.Tensor]) -> None:
    """Copy peft-named LoRA weights (already validated) into the adapter ``name`` injected in ``model``."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for key, value in tensors.items():
            path, part = key[len(PEFT_PREFIX) :].rsplit(".lora_", 1)
            which = getattr(modules[path], "lora_" + part.split(".", 1)[0])
            which[name].weight.copy_(value)


class AdapterSlots:
    """An LRU of adapters injected into one base model. Callers hold the engine lock around ``active``."""

    def __init__(self, files: AdapterFiles, capacity: int) -> None:
        self.files = files
        self.capacity = max(1, capacity)
        self._loaded: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    @staticmethod
    def slot(sha256: str) -> str:
        return "a" + sha256[:24]

    def loaded(self) -> list[str]:
        return list(self._loaded)

    def _ensure(self, lm: HFCausalLM, sha256: str, spec: LoraSpec) -> None:
        from peft import inject_adapter_in_model
        from safetensors import SafetensorError
        from safetensors.torch import load

        name = self.slot(sha256)
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return
        if not self.files.exists(sha256):
            raise Conflict(f"the file of adapter {sha256[:12]} is missing from the data dir; upload it again",
                           {"sha256": sha256})
        # The file is read and checked against the row and the model before anything is injected: a row with a
        # rank or targets its file does not have (an archive of an older server) must not allocate that LoRA.
        try:
            tensors = load(self.files.read(sha256))
            check_fits(spec, {k: (str(v.dtype), tuple(v.shape)) for k, v in tensors.items()}, base_info(lm))
        except (SafetensorError, MemcubedError) as exc:
            reason = exc.message if isinstance(exc, MemcubedError) else str(exc)
            raise Conflict(f"adapter {sha256[:12]} cannot be attached: {reason}", {"sha256": sha256}) from exc
        while len(self._loaded) >= self.capacity:
            old, _ = self._loaded.popitem(last=False)
            self._remove(lm, old)
        try:
            with warnings.catch_warnings():
                # peft warns that the model already holds adapters: side by side is exactly the intent here.
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                inject_adapter_in_model(lora_config(spec), lm.model, adapter_name=name)
            load_weights(lm.model, name, tensors)
        except BaseException:
            self._remove(lm, name)  # half-injected layers would stay in every later forward pass
            raise
        lm.model.eval()
        self._loaded[name] = None
        self.loads += 1

    @staticmethod
    def _remove(lm: HFCausalLM, name: str) -> None:
        """Take adapter ``name`` out of every layer it was injected into, and out of the model's peft config."""
        for layer in tuner_layers(lm.model):
            if name in layer.lora_A:
                layer.delete_adapter(name)
        getattr(lm.model, "peft_config", {}).pop(name, None)

    @contextmanager
    def active(self, lm: HFCausalLM, adapters: Sequence[tuple[str, LoraSpec]]) -> Iterator[None]:
        """Inside, the model runs with exactly these adapters (sha256, spec) summed; after, with none, even when
        loading one failed half-way. At most ``capacity`` adapters at once (the service checks)."""
        with self._lock:
            try:
                for sha, spec in adapters:
                    self._ensure(lm, sha, spec)
                names = [self.slot(sha) for sha, _ in adapters]
                for layer in tuner_layers(lm.model):
                    layer.enable_adapters(True)
                    layer.set_adapter(names)
                    # set_adapter marks the active adapters trainable; this is inference.
                    layer.requires_grad_(False)
                yield
            finally:
                for layer in tuner_layers(lm.model):
                    layer.enable_adapters(False)
