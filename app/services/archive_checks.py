"""Import = upload: what an archive brings (embeddings, activation caches, adapters) passes the checks a fresh
write or an upload of the same thing passes, before its transaction opens. A violation is a 422 naming the item
(the upload's own message in it), and nothing is written.

- embeddings are reused only when the archive's embedding model is this server's (else recomputed): each must
  have its dimension, be finite, and be of unit norm as the embedder writes it. A vector of another norm was not
  made by this model, so it is refused rather than silently renormalised.
- activations: token ids within ``activation_max_tokens`` and the vocabulary; a cache that would be adopted
  (its file, of this server's model) must be its text's tokens under this model, and its KV file the tensors of
  this model's shape for exactly those tokens (which bounds its size).
- adapters: ``validate_adapter``, as an upload (size, config, file parsed, tensors against the base model when
  the adapter was made for this server's model; against its own config otherwise, as generation refuses it).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

import numpy as np

from app.activation.fingerprint import unpack_tokens
from app.activation.kv import HeaderError, check_file
from app.activation.model import CausalLM
from app.errors import InvalidInput, MemcubedError
from app.lifecycle.archive import bad
from app.parametric.validate import BaseModelInfo, adapter_config, validate_adapter
from app.schemas.lifecycle import ActivationLine, AdapterLine
from app.services.activation import ActivationService

NORM_TOLERANCE = 1e-3
"""How far from 1 an imported embedding's norm may be (float32 rounding of a unit vector is ~1e-7)."""


def check_embeddings(vecs: np.ndarray, dim: int, member: str) -> None:
    """Rows of ``dim`` finite float32 numbers of unit norm; the first bad row is named (1-based, as its line)."""
    if vecs.ndim != 2 or vecs.shape[1] != dim:
        raise bad(f"{member} holds embeddings of the wrong size", member=member)
    finite = np.isfinite(vecs).all(axis=1)
    if not finite.all():
        line = int(np.argmin(finite)) + 1
        raise bad(f"{member} line {line}: the embedding holds NaN or infinity", member=member, line=line)
    norms = np.linalg.norm(vecs.astype(np.float64), axis=1)
    off = np.abs(norms - 1.0) > NORM_TOLERANCE
    if off.any():
        line = int(np.argmax(off)) + 1
        raise bad(f"{member} line {line}: the embedding has norm {norms[line - 1]:.4g}; this server's embeddings "
                  "are of unit norm", member=member, line=line)


def check_activations(activation: ActivationService, lines: Sequence[ActivationLine], files: Mapping[str, bytes],
                      model: CausalLM | None, member: str) -> None:
    """Every activation line as a create would check its tokens; the adoptable ones also against ``model``.
    One cache per model and token sequence, as the store keeps (two would break the insert)."""
    seen: set[tuple[str, str]] = set()
    for a in lines:
        if a.file is not None:
            if (a.fingerprint, a.token_hash) in seen:
                raise bad(f"activation {a.id}: a second cache of the same model and tokens", member=member,
                          activation=str(a.id))
            seen.add((a.fingerprint, a.token_hash))
        ids = unpack_tokens(base64.b64decode(a.token_ids))
        ours = model is not None and a.fingerprint == model.fingerprint.key
        try:
            activation.check_tokens(ids, model if ours else None)
        except MemcubedError as exc:
            raise _named(exc, f"activation {a.id}", member, activation=str(a.id)) from exc
        if model is None or not ours:
            continue  # kept 'stale': rebuilt from its text by this server's model, never used as given
        if model.encode(a.prefix_text) != list(ids):
            raise bad(f"activation {a.id}: its token ids are not its text's tokens under {model.fingerprint.model_id}",
                      member=member, activation=str(a.id))
        if a.file is not None:
            try:
                check_file(files[a.file], fingerprint=a.fingerprint, tokens=len(ids), layers=model.layers,
                           kv_heads=model.kv_heads, head_dim=model.head_dim)
            except HeaderError as exc:
                raise bad(f"activation {a.id}: {a.file} is not this model's cache of its tokens ({exc})",
                          member=a.file, activation=str(a.id)) from exc


def check_adapters(lines: Sequence[AdapterLine], files: Mapping[str, bytes], base: BaseModelInfo | None,
                   max_bytes: int, member: str) -> None:
    """Every adapter as an upload of its file with the config its row regenerates; one of each version."""
    if len({(ad.name, ad.version) for ad in lines}) != len(lines):
        raise bad(f"{member} repeats an adapter name and version", member=member)
    for ad in lines:
        data = files[f"adapters/{ad.sha256}.safetensors"]
        ours = base if base is not None and ad.base_fingerprint == base.fingerprint else None
        try:
            if ad.size_bytes != len(data):
                raise InvalidInput(f"size_bytes is {ad.size_bytes}; the file has {len(data)}")
            validate_adapter(adapter_config(ad), data, ours, max_bytes)
        except MemcubedError as exc:
            raise _named(exc, f"adapter {ad.name!r} v{ad.version}", member, adapter=ad.name,
                         version=ad.version) from exc


def _named(exc: MemcubedError, item: str, member: str, **which: object) -> InvalidInput:
    """An upload's refusal (413, 409 or 422) as the archive's 422, naming the item, with the upload's details."""
    return bad(f"{item}: {exc.message}", **{**exc.details, "member": member, **which})
