"""Parametric memory benchmark: distil a synthetic cube of template facts (people, places, dates, jobs) into a
LoRA adapter of SmolLM2-135M-Instruct and measure what it learned, with no LLM judge.

    python -m benchmarks.distill_bench [--facts 200] [--steps 300] [--threads 2]

Runs the service's own training loop (``app.parametric.distill``) on the CPU unless CUDA is present (or
``--device``). Each fact is trained in one phrasing and measured in another that training never saw:

- perplexity of the held-out phrasings, base vs adapter (whole sentence, and the answer words alone);
- closed-book exact match: the held-out phrasing without its answer as a prompt; the greedy continuation
  must start with the answer (and the same on the trained phrasing, for recall).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save

from app.activation.model import HFCausalLM, ModelSpec, load_model
from app.parametric import distill

FIRST = ["Ardin", "Belsa", "Corvo", "Dunya", "Esker", "Falin", "Gorra", "Hestia", "Ilvar", "Joren", "Kesta",
         "Lumo", "Marro", "Nysa", "Orrin", "Pella", "Quorin", "Rasti", "Sable", "Tovin", "Ulla", "Varek", "Wenna",
         "Xavo", "Yselt", "Zarin"]
LAST = ["Ashvale", "Brindle", "Corrow", "Dunmere", "Elstrom", "Fenwick", "Galloway", "Hollin", "Ivers",
        "Jastrow", "Kettle", "Lorne", "Marsh", "Norvell", "Oakes", "Pryor", "Quill", "Rook", "Stroud", "Thorne"]
CITIES = ["Lisbon", "Oslo", "Krakow", "Porto", "Tallinn", "Bergen", "Ghent", "Lyon", "Turin", "Graz", "Brno",
          "Split", "Cork", "Leeds", "Malmo", "Basel", "Bilbao", "Dresden", "Riga", "Zagreb"]
JOBS = ["baker", "pilot", "nurse", "carpenter", "lawyer", "chemist", "farmer", "teacher", "plumber", "painter",
        "dentist", "librarian", "surgeon", "tailor", "architect"]
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "grey", "brown"]

# (trained phrasing, held-out phrasing); the answer is the sentence's last word.
RELATIONS = [
    ("{p} lives in {v}.", "The home town of {p} is {v}."),
    ("{p} was born in {v}.", "The year of birth of {p} is {v}."),
    ("{p} works as a {v}.", "By trade, {p} is a {v}."),
    ("The favourite colour of {p} is {v}.", "{p} likes the colour {v}."),
]


@dataclass(frozen=True)
class Fact:
    trained: str
    held_out: str
    answer: str


def facts(n: int, seed: int = 0) -> list[Fact]:
    """``n`` facts about distinct made-up people, four relations each, values drawn at random."""
    rng = random.Random(seed)
    names = [f"{f} {last}" for f in FIRST for last in LAST]
    rng.shuffle(names)
    out: list[Fact] = []
    for i in range(n):
        person, (train, held) = names[i // len(RELATIONS)], RELATIONS[i % len(RELATIONS)]
        value = [rng.choice(CITIES), str(rng.randint(1931, 1999)), rng.choice(JOBS), rng.choice(COLOURS)][
            i % len(RELATIONS)]
        out.append(Fact(train.format(p=person, v=value), held.format(p=person, v=value), value))
    return out


def probe(sentence: str, answer: str) -> distill.Probe:
    head = sentence.rstrip(".")
    assert head.endswith(answer)
    return distill.Probe(prompt=head[: -len(answer)].rstrip(), answer=answer)


def measure(lm: HFCausalLM, items: list[Fact]) -> dict[str, float]:
    held_probes = [probe(f.held_out, f.answer) for f in items]
    return {
        "ppl_sentence": distill.perplexity(lm, [("", f.held_out) for f in items]),
        "ppl_answer": distill.perplexity(lm, [(p.prompt, " " + p.answer) for p in held_probes]),
        "em_held_out": distill.exact_match(lm, held_probes, max_new_tokens=4),
        "em_trained": distill.exact_match(lm, [probe(f.trained, f.answer) for f in items], max_new_tokens=4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", type=int, default=200)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval", type=int, default=0, help="measure on the first N facts (0: all)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--models-dir", type=Path,
        default=Path(os.environ.get("MEMCUBED_ACTIVATION_MODELS_DIR",
                                    Path(tempfile.gettempdir()) / "memcubed-test-models")),
    )
    args = parser.parse_args()

    t = time.perf_counter()
    lm = load_model(ModelSpec(name="smollm2-135m-instruct", models_dir=args.models_dir, device=args.device,
                              dtype="float32", threads=args.threads))
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} "
               f"thread(s), device {lm.device}, {lm.dtype}; model load {time.perf_counter() - t:.2f} s")
    items = facts(args.facts)
    cfg = distill.DistillSettings(rank=args.rank, steps=args.steps, learning_rate=args.lr,
                                  batch_size=args.batch, max_tokens=48)
    print(f"distillation benchmark on {machine}")
    print(f"{len(items)} facts, e.g. trained {items[0].trained!r} / held-out {items[0].held_out!r}")
    print(f"rank {cfg.rank}, alpha {cfg.alpha}, {cfg.steps} steps of {cfg.batch_size}, lr {cfg.learning_rate}, "
          f"targets {','.join(cfg.target_modules)}")

    def every(step: int, loss: float) -> bool:
        if step % max(1, cfg.steps // 10) == 0:
            print(f"  step {step:4d}  loss {loss:.3f}", flush=True)
        return True

    trained = distill.train(lm, [f.trained for f in items], cfg, every)
    size = len(save(trained.tensors))
    sample = items[: args.eval or len(items)]
    distill.use_adapter(lm, False)
    base = measure(lm, sample)
    distill.use_adapter(lm, True)
    tuned = measure(lm, sample)
    distill.use_adapter(lm, False)

    drop = 1 - tuned["ppl_sentence"] / base["ppl_sentence"]
    rows = [
        ("training time", f"{trained.seconds:.1f} s ({trained.seconds / cfg.steps:.2f} s/step)", ""),
        ("adapter size", f"{size / 1e6:.2f} MB ({sum(v.numel() for v in trained.tensors.values()):,} params)", ""),
        ("loss first → last", f"{trained.losses[0]:.3f} → {trained.losses[-1]:.3f}", ""),
        ("held-out phrasing perplexity (sentence)", f"{base['ppl_sentence']:.2f}", f"{tuned['ppl_sentence']:.2f}"),
        ("held-out phrasing perplexity (answer words)", f"{base['ppl_answer']:.2f}", f"{tuned['ppl_answer']:.2f}"),
        ("closed-book EM, held-out phrasing", f"{base['em_held_out']:.3f}", f"{tuned['em_held_out']:.3f}"),
        ("closed-book EM, trained phrasing", f"{base['em_trained']:.3f}", f"{tuned['em_trained']:.3f}"),
    ]
    print("| measure | base | with adapter |")
    print("|---|---|---|")
    for name, b, a in rows:
        print(f"| {name} | {b} | {a} |")
    print(f"held-out phrasing perplexity drop: {drop:.1%} (goal ≥ 30%), measured on {len(sample)} facts")


if __name__ == "__main__":
    main()
