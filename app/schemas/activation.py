"""Activation memory and generation requests and responses."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

PREFIX_MAX_CHARS = 256 * 1024
"""Longest prefix text an activation is made from (and imported with)."""


class ActivationCreate(BaseModel):
    """Exactly one source: raw ``text``, the cube's chosen ``memory_ids``, or top memories for ``query``."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, min_length=1, max_length=PREFIX_MAX_CHARS)
    memory_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=500)
    query: str | None = Field(default=None, min_length=1, max_length=8192)
    top_k: int | None = Field(default=None, ge=1, le=100, description="Memories rendered for a query.")

    @model_validator(mode="after")
    def _one_source(self) -> ActivationCreate:
        given = [name for name in ("text", "memory_ids", "query") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of text, memory_ids or query")
        if self.top_k is not None and self.query is None:
            raise ValueError("top_k only applies with query")
        return self


class ActivationOut(BaseModel):
    id: uuid.UUID
    cube_id: uuid.UUID
    model_id: str
    fingerprint: str
    compatible: bool | None = Field(
        description="Whether the loaded model can use it; null until the model is loaded in this process."
    )
    source: str
    tokens: int
    token_hash: str
    bytes: int
    tier: str | None
    precision: str
    status: str
    hits: int
    created_at: datetime
    last_used_at: datetime | None
    text: str = Field(description="The rendered prefix; a prompt that starts with it reuses this cache.")


class ActivationList(BaseModel):
    activations: list[ActivationOut]


class TierStats(BaseModel):
    bytes: int
    entries: int
    budget_bytes: int
    available: bool


class ModelInfo(BaseModel):
    loaded: bool
    model_id: str | None = None
    fingerprint: str | None = None
    device: str | None = None
    dtype: str | None = None
    precision: str | None = None


class ActivationStats(BaseModel):
    """The caller's activations per tier, and this process's counters for them since it started."""

    tiers: dict[str, TierStats]
    hits: int
    misses: int
    evictions: int
    promotions: int
    demotions: int
    model: ModelInfo


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=256 * 1024)
    cube_id: uuid.UUID | None = Field(default=None, description="Reuse only this cube's activations.")
    activation_id: uuid.UUID | None = Field(
        default=None, description="Prepend this activation's prefix to the prompt (and reuse its cache)."
    )
    max_new_tokens: int = Field(default=32, ge=1, le=4096)
    use_activation: bool = True
    chat: bool = Field(
        default=False, description="Wrap the prompt as a user turn of the model's chat template."
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 is greedy.")
    seed: int | None = Field(default=None, ge=0)
    adapter_ids: list[uuid.UUID] | None = Field(
        default=None, max_length=16,
        description="LoRA adapters (parametric memory) to attach, summed; a KV cache built without them is "
        "not reused with them.",
    )


class GenerateResponse(BaseModel):
    text: str
    token_ids: list[int]
    finish_reason: str
    model_id: str
    fingerprint: str = Field(description="Of the weights that ran: the base model's, or base + adapters'.")
    adapter_ids: list[uuid.UUID] = Field(default_factory=list, description="The adapters attached.")
    activation_id: uuid.UUID | None = Field(description="The activation whose cache was reused, if any.")
    tier_hit: str | None = Field(description="The tier the reused cache came from: gpu, cpu or disk.")
    reused_tokens: int = Field(description="Prompt tokens covered by the reused cache.")
    prefill_tokens: int = Field(description="Prompt tokens computed for this request.")
    prompt_tokens: int
    ttft_ms: float = Field(description="From the request's start (cache fetch included) to the first token.")
    total_ms: float
