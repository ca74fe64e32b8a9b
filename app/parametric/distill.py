"""Distillation: fine-tune a LoRA adapter of the local model on a cube's memories, on the CPU, and measure what
it learned without an LLM judge.

The measures are deliberately mechanical: perplexity (base vs adapter) of held-out memories, of trained
memories, and of trained memories in a frame the training never saw; and closed-book exact match on cloze
questions made by a template (a memory minus its last word). Training runs on its own copy of the model, so
the serving model is never touched by a half-trained adapter.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from app.activation.generate import generate
from app.activation.model import HFCausalLM
from app.parametric.attach import lora_config, tuner_layers
from app.parametric.validate import PEFT_PREFIX, LoraSpec

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
REFRAME = "Here is something I remember: {}"
"""An unseen phrasing of a trained memory: knowledge, not the exact string, should carry over."""
_SLOT = "distill"
_WORD = re.compile(r"[\w'-]+")


class Cancelled(Exception):
    """The caller asked to stop between two steps; nothing was produced."""


@dataclass(frozen=True)
class Probe:
    """A closed-book question: the model must continue ``prompt`` with ``answer``."""

    prompt: str
    answer: str


@dataclass(frozen=True)
class DistillSettings:
    rank: int = 8
    steps: int = 100
    learning_rate: float = 2e-3
    batch_size: int = 8
    max_tokens: int = 64
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    seed: int = 0

    @property
    def alpha(self) -> int:
        return 2 * self.rank

    def spec(self, base_model: str) -> LoraSpec:
        return LoraSpec(rank=self.rank, alpha=self.alpha, target_modules=sorted(self.target_modules),
                        base_model=base_model)


@dataclass
class Trained:
    tensors: dict[str, torch.Tensor]
    spec: LoraSpec
    seconds: float
    losses: list[float] = field(default_factory=list)


def cloze(text: str, frame: str = "{}") -> Probe | None:
    """The memory without its last word as the prompt, that word as the answer; None when too short."""
    body = " ".join(text.split()).rstrip(" .!?;:,")
    head, _, last = body.rpartition(" ")
    answer = last.strip("\"'()[]")
    if len(head.split()) < 2 or not answer or not _WORD.fullmatch(answer):
        return None
    return Probe(prompt=frame.format(head), answer=answer)


def split(texts: Sequence[str], holdout: float, seed: int) -> tuple[list[str], list[str]]:
    """(trained, held out): a seeded shuffle, at least one of each when there are three or more."""
    order = list(dict.fromkeys(texts))
    random.Random(seed).shuffle(order)
    n = 0 if len(order) < 3 else max(1, min(len(order) - 2, round(len(order) * holdout)))
    return order[n:], order[:n]


def _encode(lm: HFCausalLM, text: str, limit: int) -> list[int]:
    ids = lm.encode(text)[:limit]
    eos = lm.tokenizer.eos_token_id
    return [*ids, eos] if isinstance(eos, int) and len(ids) < limit else ids


def train(lm: HFCausalLM, texts: Sequence[str], cfg: DistillSettings,
          step_done: Callable[[int, float], bool] | None = None) -> Trained:
    """Inject a fresh LoRA adapter into ``lm`` (a private copy: training changes it) and fit it to ``texts``.

    ``step_done(step, loss)`` returning False stops the run (``Cancelled``).
    """
    from peft import inject_adapter_in_model

    if not texts:
        raise ValueError("nothing to train on")
    torch.manual_seed(cfg.seed)
    spec = cfg.spec(lm.fingerprint.model_id)
    model = lm.model
    for p in model.parameters():
        p.requires_grad_(False)
    inject_adapter_in_model(lora_config(spec), model, adapter_name=_SLOT)
    params = [p for n, p in model.named_parameters() if ".lora_" in n and f".{_SLOT}." in n]
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    encoded = [_encode(lm, t, cfg.max_tokens) for t in texts]
    rng = random.Random(cfg.seed)
    order: list[int] = []
    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    try:
        for step in range(cfg.steps):
            batch = []
            for _ in range(min(cfg.batch_size, len(encoded))):
                if not order:
                    order = list(range(len(encoded)))
                    rng.shuffle(order)
                batch.append(encoded[order.pop()])
            width = max(len(b) for b in batch)
            ids = torch.tensor([b + [pad] * (width - len(b)) for b in batch], device=lm.device)
            mask = torch.tensor([[1] * len(b) + [0] * (width - len(b)) for b in batch], device=lm.device)
            labels = ids.masked_fill(mask == 0, -100)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).loss
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.item()))
            if step_done is not None and not step_done(step + 1, losses[-1]):
                raise Cancelled()
    finally:
        model.eval()
        for p in params:
            p.requires_grad_(False)
    seconds = time.perf_counter() - started
    tensors: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if _SLOT in getattr(module, "lora_A", {}):
            tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = module.lora_A[_SLOT].weight.detach().cpu().contiguous()
            tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = module.lora_B[_SLOT].weight.detach().cpu().contiguous()
    return Trained(tensors=tensors, spec=spec, seconds=seconds, losses=losses)


def use_adapter(lm: HFCausalLM, on: bool) -> None:
    """Switch the trained adapter of a training copy on or off (off: the exact base model)."""
    for layer in tuner_layers(lm.model):
        layer.enable_adapters(on)
        if on:
            layer.set_adapter([_SLOT])
            layer.requires_grad_(False)


def perplexity(lm: HFCausalLM, pairs: Sequence[tuple[str, str]]) -> float:
    """exp(mean NLL) of each ``target`` token given ``context`` + the target so far, over all pairs."""
    total, count = 0.0, 0
    with torch.no_grad():
        for context, target in pairs:
            head = lm.encode(context) if context else []
            tail = lm.encode(target)
            ids = head + tail
            if len(ids) < 2 or not tail:
                continue
            x = torch.tensor([ids], device=lm.device)
            logits = lm.model(input_ids=x, use_cache=False).logits[0].float()
            logp = torch.log_softmax(logits[:-1], dim=-1)
            start = max(len(head), 1)
            picked = logp[start - 1 :].gather(1, x[0, start:].unsqueeze(1))
            total -= float(picked.sum().item())
            count += len(ids) - start
    return math.exp(total / count) if count else float("nan")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def exact_match(lm: HFCausalLM, probes: Sequence[Probe], max_new_tokens: int = 8) -> float:
    """Share of probes whose greedy continuation starts with the answer's words."""
    if not probes:
        return float("nan")
    hits = 0
    for probe in probes:
        want = _words(probe.answer)
        out = generate(lm, lm.encode(probe.prompt), None, 0, max_new_tokens).text
        hits += _words(out)[: len(want)] == want
    return hits / len(probes)


def _both(lm: HFCausalLM, measure: Callable[[], float]) -> dict[str, float | None]:
    """The measure without and with the adapter; None where there was nothing to measure (JSON has no NaN)."""
    use_adapter(lm, False)
    base = measure()
    use_adapter(lm, True)
    adapter = measure()
    use_adapter(lm, False)
    return {k: None if math.isnan(v) else round(v, 4) for k, v in (("base", base), ("adapter", adapter))}


def evaluate(lm: HFCausalLM, trained: Sequence[str], held_out: Sequence[str], limit: int = 50) -> dict[str, Any]:
    """Base vs adapter on the training copy: perplexities and closed-book exact match (see the module doc)."""
    seen = list(trained)[:limit]
    unseen = list(held_out)[:limit]
    recall = [p for p in (cloze(t, REFRAME) for t in seen) if p is not None]
    fresh = [p for p in (cloze(t, REFRAME) for t in unseen) if p is not None]
    frame = REFRAME.format("").rstrip()
    return {
        "perplexity": {
            "held_out": _both(lm, lambda: perplexity(lm, [("", t) for t in unseen])),
            "trained": _both(lm, lambda: perplexity(lm, [("", t) for t in seen])),
            "trained_reframed": _both(lm, lambda: perplexity(lm, [(frame, " " + t) for t in seen])),
        },
        "closed_book": {
            "trained": {**_both(lm, lambda: exact_match(lm, recall)), "questions": len(recall)},
            "held_out": {**_both(lm, lambda: exact_match(lm, fresh)), "questions": len(fresh)},
        },
    }
