"""KV caches as plain tensors: per-layer keys and values in one precision and device, saved as safetensors.

Kept apart from transformers' cache classes (which change between releases and are mutated by decoding)
so that a stored cache is an immutable blob and only a decoding state built from a copy ever grows.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors.torch import save_file as st_save_file

KVLayers = list[tuple[torch.Tensor, torch.Tensor]]
"""One ``(keys, values)`` pair per layer, each ``[1, kv_heads, tokens, head_dim]``."""

PRECISIONS = ("native", "float32", "float16", "bfloat16", "int8")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def resolve_precision(precision: str, native: torch.dtype) -> str:
    """``native`` means the model's own dtype; anything else names a storage precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown activation precision {precision!r}; use one of {PRECISIONS}")
    return dtype_name(native) if precision == "native" else precision


@dataclass(frozen=True)
class KVBlob:
    """An immutable stored cache. ``int8`` keeps one float16 scale per (layer, head, token) row.

    Symmetric per-token scales: a token's row is quantised on its own, so cropping a prefix never needs
    requantising and one outlier token cannot flatten the rest.
    """

    precision: str
    tensors: dict[str, torch.Tensor]
    layers: int
    tokens: int

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device

    def to(self, device: torch.device | str, *, pin: bool = False) -> KVBlob:
        """A copy on ``device``; ``pin`` page-locks CPU memory so a later copy to the GPU is asynchronous."""
        moved = {}
        for name, t in self.tensors.items():
            c = t.to(device, copy=True)
            moved[name] = c.pin_memory() if pin and c.device.type == "cpu" else c
        return KVBlob(self.precision, moved, self.layers, self.tokens)

    def view(self, tokens: int, dtype: torch.dtype, device: torch.device) -> KVLayers:
        """The first ``tokens`` positions as ``dtype`` on ``device``.

        May alias the blob when nothing needs converting: callers that decode must copy first
        (``CausalLM.start`` does), so a stored blob is never written to.
        """
        if tokens > self.tokens:
            raise ValueError(f"asked for {tokens} tokens of a {self.tokens}-token cache")
        out: KVLayers = []
        for i in range(self.layers):
            k = self.tensors[f"k.{i}"][..., :tokens, :]
            v = self.tensors[f"v.{i}"][..., :tokens, :]
            if self.precision == "int8":
                ks = self.tensors[f"ks.{i}"][..., :tokens, :]
                vs = self.tensors[f"vs.{i}"][..., :tokens, :]
                k = k.to(device, non_blocking=True).to(dtype) * ks.to(device, non_blocking=True).to(dtype)
                v = v.to(device, non_blocking=True).to(dtype) * vs.to(device, non_blocking=True).to(dtype)
            else:
                k = k.to(device=device, dtype=dtype, non_blocking=True)
                v = v.to(device=device, dtype=dtype, non_blocking=True)
            out.append((k, v))
        return out


def _quantise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = x.float().abs().amax(dim=-1, keepdim=True).clamp(min=1e-8) / 127.0
    q = torch.round(x.float() / scale).clamp(-127, 127).to(torch.int8)
    return q, scale.to(torch.float16)


def encode(
    layers: Sequence[tuple[torch.Tensor, torch.Tensor]],
    precision: str,
    device: torch.device | str = "cpu",
    *,
    pin: bool = False,
) -> KVBlob:
    """A stored copy of ``layers`` at ``precision`` (already resolved, never ``native``) on ``device``."""
    tensors: dict[str, torch.Tensor] = {}
    for i, (k, v) in enumerate(layers):
        if precision == "int8":
            tensors[f"k.{i}"], tensors[f"ks.{i}"] = _quantise(k)
            tensors[f"v.{i}"], tensors[f"vs.{i}"] = _quantise(v)
        else:
            dtype = DTYPES[precision]
            tensors[f"k.{i}"] = k.to(dtype=dtype)
            tensors[f"v.{i}"] = v.to(dtype=dtype)
    moved = {}
    for name, t in tensors.items():
        c = t.to(device, copy=True).contiguous()
        moved[name] = c.pin_memory() if pin and c.device.type == "cpu" else c
    return KVBlob(precision, moved, len(layers), int(layers[0][0].shape[-2]) if layers else 0)


def save(blob: KVBlob, path: Path, metadata: dict[str, str]) -> int:
    """Write atomically (temp file + rename) so a crash never leaves a half file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    cpu = {k: (t if t.device.type == "cpu" else t.cpu()) for k, t in blob.tensors.items()}
    meta = {**metadata, "precision": blob.precision, "layers": str(blob.layers), "tokens": str(blob.tokens)}
    st_save_file(cpu, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path.stat().st_size


_ST_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I8": torch.int8,
    "I32": torch.int32,
    "I64": torch.int64,
    "U8": torch.uint8,
}


_HEADER_LIMIT = 16 * 1024 * 1024
_ST_NAMES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "int8": "I8"}


class HeaderError(ValueError):
    """A safetensors file whose header does not describe its bytes; ``tensor`` names the entry at fault."""

    def __init__(self, message: str, tensor: str | None = None) -> None:
        super().__init__(message)
        self.tensor = tensor


def parse_header(data: bytes) -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict[str, str]]:
    """Name → (dtype, shape) and the metadata of a safetensors file held in memory, every entry's offsets and
    byte count checked against the data, without reading a tensor. Uploaded adapters and imported KV caches
    are both checked through it before anything of them is kept."""
    if len(data) < 8:
        raise HeaderError("too short")
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(_HEADER_LIMIT, len(data) - 8):
        raise HeaderError("header length out of range")
    try:
        header = json.loads(data[8 : 8 + size])
    except (ValueError, UnicodeDecodeError) as exc:
        raise HeaderError("header is not JSON") from exc
    if not isinstance(header, dict):
        raise HeaderError("header is not an object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise HeaderError("__metadata__ is not a map of strings")
    body = len(data) - 8 - size
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("shape"), list):
            raise HeaderError(f"entry {name!r} has no shape", name)
        dtype, shape, offsets = entry.get("dtype"), tuple(entry["shape"]), entry.get("data_offsets")
        if dtype not in _ST_DTYPES:
            raise HeaderError(f"entry {name!r} has an unknown dtype {dtype!r}", name)
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise HeaderError(f"entry {name!r} has a bad shape", name)
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= body):
            raise HeaderError(f"entry {name!r} has offsets outside the file", name)
        count = 1
        for d in shape:
            count *= d
        if offsets[1] - offsets[0] != count * torch.empty((), dtype=_ST_DTYPES[dtype]).element_size():
            raise HeaderError(f"entry {name!r} has {offsets[1] - offsets[0]} bytes for shape {list(shape)}", name)
        out[name] = (dtype, shape)
    if not out:
        raise HeaderError("it holds no tensors")
    return out, meta


def check_file(data: bytes, *, fingerprint: str, tokens: int, layers: int, kv_heads: int, head_dim: int) -> None:
    """A stored cache file (``save``'s format) that ``load`` can read for a model of this shape and exactly
    ``tokens`` positions: its fingerprint, precision, and every tensor's name, dtype and shape. ``HeaderError``
    names the first defect; the file's size then follows from the model and the token count."""
    entries, meta = parse_header(data)
    precision = meta.get("precision")
    if precision not in _ST_NAMES:
        raise HeaderError(f"precision {precision!r} is not one of {sorted(_ST_NAMES)}")
    if meta.get("fingerprint") != fingerprint:
        raise HeaderError("the file was computed by another model than its row says")
    if meta.get("layers") != str(layers) or meta.get("tokens") != str(tokens):
        raise HeaderError(f"the file holds {meta.get('layers')} layers x {meta.get('tokens')} tokens; the model "
                          f"has {layers} layers and the token ids are {tokens}")
    shape = (1, kv_heads, tokens, head_dim)
    want: dict[str, tuple[str, tuple[int, ...]]] = {}
    for i in range(layers):
        for part in ("k", "v"):
            want[f"{part}.{i}"] = (_ST_NAMES[precision], shape)
            if precision == "int8":
                want[f"{part}s.{i}"] = ("F16", (*shape[:3], 1))
    for name in sorted(set(want) | set(entries)):
        if entries.get(name) != want.get(name):
            raise HeaderError(f"tensor {name!r} is {entries.get(name)}; the model needs {want.get(name)}", name)


def _header(fh: BinaryIO) -> tuple[int, dict[str, Any]]:
    (size,) = struct.unpack("<Q", fh.read(8))
    return 8 + size, json.loads(fh.read(size))


def read_metadata(path: Path) -> dict[str, str]:
    """The safetensors header's metadata without reading the tensors."""
    with path.open("rb") as fh:
        _, header = _header(fh)
    return dict(header.get("__metadata__") or {})


def load(path: Path) -> tuple[KVBlob, dict[str, str]]:
    """One sequential read into one buffer, then tensors that are views of it: no copy after the read.

    This is what keeps a disk-tier reload close to a raw read of the same bytes.
    """
    with path.open("rb") as fh:
        start, header = _header(fh)
        total = os.fstat(fh.fileno()).st_size - start
        buf = bytearray(total)
        view = memoryview(buf)
        got = 0
        while got < total:
            n = fh.readinto(view[got:])
            if not n:
                raise OSError(f"{path} is truncated")
            got += n
    meta = dict(header.pop("__metadata__", None) or {})
    tensors: dict[str, torch.Tensor] = {}
    for name, info in header.items():
        dtype = _ST_DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        size = torch.empty((), dtype=dtype).element_size()
        if end == begin:
            t = torch.empty(0, dtype=dtype)
        elif begin % size:
            t = torch.frombuffer(bytearray(view[begin:end]), dtype=dtype)
        else:
            t = torch.frombuffer(buf, dtype=dtype, count=(end - begin) // size, offset=begin)
        tensors[name] = t.reshape(info["shape"])
    blob = KVBlob(meta["precision"], tensors, int(meta["layers"]), int(meta["tokens"]))
    return blob, meta


def bytes_per_token(layers: int, kv_heads: int, head_dim: int, precision: str) -> float:
    """Storage cost of one token at ``precision`` (int8 adds its two float16 scales per layer and head)."""
    values = 2 * layers * kv_heads * head_dim
    if precision == "int8":
        return values + 2 * layers * kv_heads * 2
    return values * torch.empty((), dtype=DTYPES[precision]).element_size()
