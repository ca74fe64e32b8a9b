"""The decoding loop: prefill what the reused cache does not cover, then one token at a time.

Written out rather than calling ``model.generate`` so that the time to first token is measured exactly
where it ends, and so the cache handed in is a state we own (``CausalLM.start`` copies it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from app.activation.kv import KVLayers
from app.activation.model import CausalLM


@dataclass(frozen=True)
class Generation:
    token_ids: list[int]
    text: str
    prefill_tokens: int
    ttft_ms: float
    total_ms: float
    first_logits: torch.Tensor
    finish_reason: str


def pick(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> int:
    if temperature <= 0:
        return int(torch.argmax(logits).item())
    # Shifted to <= 0 and in float64: a tiny temperature (5e-324) makes -inf and 0, never inf - inf = NaN.
    probs = torch.softmax((logits.double() - logits.max().double()) / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def generate(
    model: CausalLM,
    ids: Sequence[int],
    reused: KVLayers | None,
    reused_tokens: int,
    max_new_tokens: int,
    *,
    started: float | None = None,
    temperature: float = 0.0,
    seed: int | None = None,
) -> Generation:
    """Greedy (or sampled, with ``temperature``) continuation of ``ids``; the first ``reused_tokens`` of
    them are covered by ``reused``. ``started`` is when the request's clock began (it includes the checkout).
    """
    started = time.perf_counter() if started is None else started
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    state = model.start(reused if reused_tokens else None)
    rest = list(ids[reused_tokens:]) if reused_tokens else list(ids)
    logits = model.forward(state, rest)
    first_logits = logits.detach().float().cpu()
    token = pick(logits, temperature, generator)
    ttft = time.perf_counter() - started
    out = [token]
    finish = "stop" if token in model.eos_ids else "length"
    while finish == "length" and len(out) < max_new_tokens:
        token = pick(model.forward(state, [token]), temperature, generator)
        out.append(token)
        if token in model.eos_ids:
            finish = "stop"
    total = time.perf_counter() - started
    visible = [t for t in out if t not in model.eos_ids]
    return Generation(
        token_ids=out,
        text=model.decode(visible),
        prefill_tokens=len(rest),
        ttft_ms=round(ttft * 1000, 3),
        total_ms=round(total * 1000, 3),
        first_logits=first_logits,
        finish_reason=finish,
    )


def prefill(model: CausalLM, ids: Sequence[int]) -> KVLayers:
    """The KV cache of ``ids`` (the whole prefix; its logits are not needed)."""
    state = model.start(None)
    model.forward(state, ids)
    return model.kv(state)
