"""Tiered KV store: GPU (when CUDA is present) → CPU memory (pinned with CUDA) → disk (safetensors files).

Policy, chosen to be simple to reason about:
- Each tier has a byte budget. Memory tiers are exclusive (an entry is in the GPU *or* the CPU tier); the disk
  tier is write-through (every entry that fits is also written to disk when created), so a restart loses
  nothing and demoting from memory to disk costs no write.
- Over budget, the least recently used entry of the tier's largest tenant (most bytes there) is demoted to the
  next tier; off the end of the disk tier it is evicted. So one tenant filling a tier demotes its own entries once
  it holds more than the others, never every other tenant's. A tenant may also be capped to a share of each
  tier (``tenant_share``): past it, its own least recently used entries make room. Use promotes an entry back to
  the hottest tier.
- Stored blobs are immutable; a checkout returns views that the model copies before decoding.

Not thread-hostile: one lock guards the whole structure. It knows nothing of the database; the service
drains ``changes()`` and writes them to Postgres.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from app.activation import kv
from app.activation.kv import KVBlob, KVLayers
from app.errors import Conflict, PayloadTooLarge

log = logging.getLogger(__name__)

TIERS = ("gpu", "cpu", "disk")


@dataclass(frozen=True)
class Budgets:
    gpu: int
    cpu: int
    disk: int
    tenant_share: float = 1.0  # of each tier, the most one tenant may hold

    def of(self, tier: str) -> int:
        return int(getattr(self, tier))


@dataclass
class Entry:
    id: uuid.UUID
    tenant_id: uuid.UUID
    cube_id: uuid.UUID
    token_ids: tuple[int, ...]
    last_used: float
    hits: int = 0
    gpu: KVBlob | None = None
    cpu: KVBlob | None = None
    disk_bytes: int = 0

    @property
    def tier(self) -> str | None:
        """The hottest tier holding the entry; None once evicted."""
        if self.gpu is not None:
            return "gpu"
        if self.cpu is not None:
            return "cpu"
        return "disk" if self.disk_bytes else None

    def bytes_in(self, tier: str) -> int:
        if tier == "gpu":
            return self.gpu.nbytes if self.gpu is not None else 0
        if tier == "cpu":
            return self.cpu.nbytes if self.cpu is not None else 0
        return self.disk_bytes

    @property
    def nbytes(self) -> int:
        return self.bytes_in(self.tier) if self.tier else 0


@dataclass
class Counters:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    promotions: int = 0
    demotions: int = 0


@dataclass(frozen=True)
class Change:
    """An entry's new hottest tier (None: evicted) and its bytes there, for the metadata rows."""

    id: uuid.UUID
    tier: str | None
    nbytes: int


@dataclass(frozen=True)
class Checkout:
    layers: KVLayers
    tier: str
    tokens: int


def common_prefix(a: Sequence[int], b: Sequence[int], cap: int) -> int:
    """Length of the longest common prefix of two id sequences, at most ``cap``."""
    n = min(len(a), len(b), cap)
    if n <= 0:
        return 0
    if a[:n] == b[:n]:
        return n
    diff = np.asarray(a[:n], dtype=np.int64) != np.asarray(b[:n], dtype=np.int64)
    return int(np.argmax(diff))


def disk_dir(root: Path, fingerprint: str) -> Path:
    """One folder per model on the disk tier, so another model's caches are never opened."""
    return root / fingerprint[:16]


def disk_path(root: Path, fingerprint: str, entry_id: uuid.UUID) -> Path:
    """Where an activation's KV file lives on the disk tier."""
    return disk_dir(root, fingerprint) / f"{entry_id}.safetensors"


@dataclass
class TieredKVStore:
    root: Path
    fingerprint: str
    budgets: Budgets
    precision: str
    """Precision of CPU and disk copies (resolved: float32, float16, bfloat16 or int8)."""
    native: torch.dtype
    device: torch.device
    _entries: dict[uuid.UUID, Entry] = field(default_factory=dict)
    _changes: dict[uuid.UUID, Change] = field(default_factory=dict)
    _busy: set[uuid.UUID] = field(default_factory=set)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    counters: dict[uuid.UUID, Counters] = field(default_factory=lambda: defaultdict(Counters))

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def hot(self) -> str:
        return "gpu" if self.cuda and self.budgets.gpu > 0 else "cpu"

    @property
    def dir(self) -> Path:
        return disk_dir(self.root, self.fingerprint)

    def path(self, entry_id: uuid.UUID) -> Path:
        return disk_path(self.root, self.fingerprint, entry_id)

    # -- bookkeeping ---------------------------------------------------------------------------------------

    def used(self, tier: str, tenant_id: uuid.UUID | None = None) -> int:
        with self._lock:
            return sum(
                e.bytes_in(tier)
                for e in self._entries.values()
                if tenant_id is None or e.tenant_id == tenant_id
            )

    def get(self, entry_id: uuid.UUID) -> Entry | None:
        with self._lock:
            return self._entries.get(entry_id)

    def changes(self) -> list[Change]:
        """Tier moves and evictions since the last call, at most one per entry (the latest)."""
        with self._lock:
            out = list(self._changes.values())
            self._changes.clear()
            return out

    def totals(self) -> Counters:
        """The counters summed over every tenant (for metrics, which name no tenant)."""
        with self._lock:
            total = Counters()
            for c in self.counters.values():
                total.hits += c.hits
                total.misses += c.misses
                total.evictions += c.evictions
                total.promotions += c.promotions
                total.demotions += c.demotions
            return total

    def miss(self, tenant_id: uuid.UUID) -> None:
        with self._lock:
            self.counters[tenant_id].misses += 1

    def _changed(self, e: Entry) -> None:
        self._changes[e.id] = Change(e.id, e.tier, e.nbytes)

    # -- placement -----------------------------------------------------------------------------------------

    def _make_room(self, tier: str, need: int, tenant_id: uuid.UUID | None = None) -> bool:
        """Demote entries of ``tier`` until ``need`` more bytes of ``tenant_id`` fit, else False: first the
        tenant's own least recently used ones while it is over its share, then the least recently used of the
        tenant that holds the most bytes in the tier."""
        budget = self.budgets.of(tier)
        if need > budget:
            return False
        if tenant_id is not None and self.budgets.tenant_share < 1.0:
            share = int(budget * self.budgets.tenant_share)
            if need > share:
                return False
            while self.used(tier, tenant_id) + need > share:
                own = [e for e in self._movable(tier) if e.tenant_id == tenant_id]
                if not own:
                    return False
                self._demote(min(own, key=lambda e: e.last_used), tier)
        while self.used(tier) + need > budget:
            victims = self._movable(tier)
            if not victims:
                return False
            held: dict[uuid.UUID, int] = defaultdict(int)
            for e in victims:
                held[e.tenant_id] += e.bytes_in(tier)
            largest = max(held, key=lambda t: held[t])
            self._demote(min((e for e in victims if e.tenant_id == largest), key=lambda e: e.last_used), tier)
        return True

    def _movable(self, tier: str) -> list[Entry]:
        return [e for e in self._entries.values() if e.bytes_in(tier) and e.id not in self._busy]

    def _write_disk(self, e: Entry, blob: KVBlob) -> bool:
        estimate = blob.nbytes + 64 * 1024  # tensors plus a generous header allowance
        if estimate > self.budgets.disk or not self._make_room("disk", estimate, e.tenant_id):
            return False
        e.disk_bytes = kv.save(blob, self.path(e.id), {"fingerprint": self.fingerprint, "id": str(e.id)})
        self._make_room("disk", 0)  # in case the real file overshoots the estimate
        return True

    def _place_memory(self, e: Entry, tier: str, blob: KVBlob) -> bool:
        """Put ``blob`` in a memory tier, falling to the CPU tier when it does not fit in the GPU one."""
        if tier == "gpu" and not self._make_room("gpu", blob.nbytes, e.tenant_id):
            cpu = kv.encode(
                blob.view(blob.tokens, self.native, blob.device), self.precision, "cpu", pin=self.cuda
            )
            return self._place_memory(e, "cpu", cpu)
        if tier == "cpu" and not self._make_room("cpu", blob.nbytes, e.tenant_id):
            return False
        if tier == "gpu":
            e.gpu, e.cpu = blob, None
        else:
            e.cpu = blob
        self._changed(e)
        return True

    def _demote(self, e: Entry, tier: str) -> None:
        self.counters[e.tenant_id].demotions += 1
        self._busy.add(e.id)
        try:
            if tier == "gpu" and e.gpu is not None:
                blob, e.gpu = e.gpu, None
                cpu = kv.encode(
                    blob.view(blob.tokens, self.native, blob.device), self.precision, "cpu", pin=self.cuda
                )
                if not self._place_memory(e, "cpu", cpu) and not e.disk_bytes:
                    self._write_disk(e, cpu)
            elif tier == "cpu" and e.cpu is not None:
                blob, e.cpu = e.cpu, None
                if not e.disk_bytes:
                    self._write_disk(e, blob)
            elif tier == "disk":
                self.path(e.id).unlink(missing_ok=True)
                e.disk_bytes = 0
        finally:
            self._busy.discard(e.id)
        if e.tier is None:
            self._entries.pop(e.id, None)
            self.counters[e.tenant_id].evictions += 1
            log.info("activation %s evicted from every tier", e.id)
        self._changed(e)

    # -- operations ----------------------------------------------------------------------------------------

    def add(
        self,
        entry_id: uuid.UUID,
        tenant_id: uuid.UUID,
        cube_id: uuid.UUID,
        token_ids: Sequence[int],
        layers: KVLayers,
    ) -> Entry:
        """Store a freshly computed cache: written through to disk, placed in the hottest tier that fits."""
        with self._lock:
            e = Entry(entry_id, tenant_id, cube_id, tuple(token_ids), last_used=time.time())
            self._entries[entry_id] = e
            self._busy.add(entry_id)
            try:
                stored = kv.encode(layers, self.precision, "cpu", pin=self.cuda)
                native_bytes = sum(
                    k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers
                )
                if stored.nbytes > max(self.budgets.cpu, self.budgets.disk) and (
                    self.hot != "gpu" or native_bytes > self.budgets.gpu
                ):
                    raise PayloadTooLarge(
                        f"this activation takes {stored.nbytes} bytes, more than any tier's budget",
                        {"bytes": stored.nbytes, "budgets": asdict(self.budgets)},
                    )
                self._write_disk(e, stored)
                if self.hot == "gpu":
                    native = kv.encode(layers, kv.dtype_name(self.native), self.device)
                    self._place_memory(e, "gpu", native)
                else:
                    self._place_memory(e, "cpu", stored)
                if e.tier is None:
                    raise PayloadTooLarge("no tier had room for this activation", {"bytes": stored.nbytes})
            except BaseException:
                self._entries.pop(entry_id, None)
                self._changes.pop(entry_id, None)
                self.path(entry_id).unlink(missing_ok=True)
                raise
            finally:
                self._busy.discard(entry_id)
            self._changed(e)
            return e

    def register(
        self,
        entry_id: uuid.UUID,
        tenant_id: uuid.UUID,
        cube_id: uuid.UUID,
        token_ids: Sequence[int],
        last_used: float,
        hits: int,
    ) -> bool:
        """Adopt an entry whose disk file survived a restart; False when the file is gone or not ours."""
        path = self.path(entry_id)
        if not path.exists():
            return False
        try:
            meta = kv.read_metadata(path)
        except (OSError, ValueError):
            return False
        if meta.get("fingerprint") != self.fingerprint:
            return False
        with self._lock:
            self._entries[entry_id] = Entry(
                entry_id,
                tenant_id,
                cube_id,
                tuple(token_ids),
                last_used,
                hits,
                disk_bytes=path.stat().st_size,
            )
            return True

    def enforce(self) -> None:
        """Apply the budgets (e.g. after adopting files from a run with larger ones)."""
        with self._lock:
            for tier in TIERS:
                self._make_room(tier, 0)

    def sweep(self) -> int:
        """Delete files no entry owns: left by a crash between writing a file and committing its row."""
        removed = 0
        if not self.dir.exists():
            return 0
        with self._lock:
            for path in self.dir.iterdir():
                stem = path.name.split(".")[0]
                try:
                    owned = uuid.UUID(stem) in self._entries and path.suffix == ".safetensors"
                except ValueError:
                    owned = False
                if not owned:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def match(
        self, tenant_id: uuid.UUID, cube_id: uuid.UUID | None, token_ids: Sequence[int], min_tokens: int
    ) -> tuple[Entry, int] | None:
        """The stored prefix sharing the most leading tokens with ``token_ids`` (at least ``min_tokens``).

        Any common prefix is reusable, not just a whole stored one: causal attention makes the first n
        positions' keys and values depend on the first n tokens only. One token is always left to prefill,
        since its logits start the generation.
        """
        ids = tuple(token_ids)
        best: tuple[Entry, int] | None = None
        with self._lock:
            for e in self._entries.values():
                if e.tenant_id != tenant_id or (cube_id is not None and e.cube_id != cube_id):
                    continue
                if not e.token_ids or not ids or e.token_ids[0] != ids[0]:
                    continue
                n = common_prefix(e.token_ids, ids, len(ids) - 1)
                if n >= min_tokens and (
                    best is None or n > best[1] or (n == best[1] and e.last_used > best[0].last_used)
                ):
                    best = (e, n)
        return best

    def checkout(self, entry_id: uuid.UUID, tokens: int) -> Checkout | None:
        """The first ``tokens`` positions on the compute device, promoting the entry to the hottest tier."""
        with self._lock:
            e = self._entries.get(entry_id)
            if e is None:
                return None
            self._busy.add(entry_id)
            try:
                tier = e.tier
                if e.gpu is not None:
                    layers = e.gpu.view(tokens, self.native, self.device)
                elif e.cpu is not None:
                    layers = e.cpu.view(tokens, self.native, self.device)
                    if self.hot == "gpu":
                        full = e.cpu.view(e.cpu.tokens, self.native, self.device)
                        if self._place_memory(
                            e, "gpu", kv.encode(full, kv.dtype_name(self.native), self.device)
                        ):
                            self.counters[e.tenant_id].promotions += 1
                else:
                    blob, meta = kv.load(self.path(entry_id))
                    if meta.get("fingerprint") != self.fingerprint:
                        raise Conflict(
                            f"activation {entry_id}'s file was computed by another model",
                            {"file_fingerprint": meta.get("fingerprint"), "model": self.fingerprint},
                        )
                    layers = blob.view(tokens, self.native, self.device)
                    promoted = (
                        self._place_memory(
                            e,
                            "gpu",
                            kv.encode(
                                blob.view(blob.tokens, self.native, self.device),
                                kv.dtype_name(self.native),
                                self.device,
                            ),
                        )
                        if self.hot == "gpu"
                        else self._place_memory(e, "cpu", blob.to("cpu", pin=True) if self.cuda else blob)
                    )
                    if promoted:
                        self.counters[e.tenant_id].promotions += 1
                e.hits += 1
                e.last_used = time.time()
                self.counters[e.tenant_id].hits += 1
                self._changed(e)
                assert tier is not None
                return Checkout(layers, tier, tokens)
            finally:
                self._busy.discard(entry_id)

    def remove(self, entry_id: uuid.UUID) -> None:
        with self._lock:
            self._entries.pop(entry_id, None)
            self._changes.pop(entry_id, None)
            self.path(entry_id).unlink(missing_ok=True)
