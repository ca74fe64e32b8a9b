"""Shared helpers of the SDK tests: canned server answers and a scripted mock transport.

A uniquely named module (not ``conftest``) so test modules can import it without clashing with the
repository's other conftest files.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import memcubed

NOW = "2025-01-02T03:04:05.123456Z"
TENANT_ID = "11111111-1111-4111-8111-111111111111"
CUBE_ID = "22222222-2222-4222-8222-222222222222"
MEMORY_ID = "33333333-3333-4333-8333-333333333333"
KEY_ID = "44444444-4444-4444-8444-444444444444"
OTHER_MEMORY_ID = "55555555-5555-4555-8555-555555555555"
EDGE_ID = "66666666-6666-4666-8666-666666666666"
ENTITY_ID = "77777777-7777-4777-8777-777777777777"
ACTIVATION_ID = "88888888-8888-4888-8888-888888888888"
JOB_ID = "99999999-9999-4999-8999-999999999999"
FORGET_REQUEST_ID = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
SNAPSHOT_ID = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
ADAPTER_ID = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"


def memory_json(**overrides: Any) -> dict[str, Any]:
    """A memory as the server returns it."""
    body: dict[str, Any] = {
        "id": MEMORY_ID,
        "cube_id": CUBE_ID,
        "kind": "plaintext",
        "memory_type": "episodic",
        "content": "The user prefers window seats.",
        "content_hash": "ab" * 32,
        "user_id": "u1",
        "agent_id": None,
        "session_id": "s1",
        "occurred_at": "2024-05-01T10:00:00+02:00",
        "created_at": NOW,
        "updated_at": NOW,
        "tags": ["travel"],
        "metadata": {"k": 1},
        "source": {},
        "status": "active",
        "version": 1,
        "importance": 0.5,
        "access_count": 0,
        "last_accessed_at": None,
        "embedding_model": "all-MiniLM-L6-v2",
        "embedding_dim": 384,
    }
    body.update(overrides)
    return body


def job_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": JOB_ID,
        "tenant_id": TENANT_ID,
        "cube_id": CUBE_ID,
        "kind": "consolidate",
        "status": "queued",
        "trigger": "api",
        "attempts": 0,
        "max_attempts": 3,
        "error": None,
        "progress": 0.0,
        "params": {"forget": False, "summaries": True},
        "result": {},
        "created_at": NOW,
        "started_at": None,
        "finished_at": None,
        "updated_at": NOW,
    }
    body.update(overrides)
    return body


def policy_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cube_id": CUBE_ID,
        "enabled": True,
        "threshold": 0.2,
        "max_active": None,
        "ttl_days": None,
        "half_life_days": 30.0,
        "min_age_hours": 24.0,
        "is_default": True,
        "updated_at": None,
    }
    body.update(overrides)
    return body


def cube_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": CUBE_ID,
        "tenant_id": TENANT_ID,
        "name": "assistant",
        "description": None,
        "owner_id": None,
        "status": "active",
        "memory_count": 0,
        "created_at": NOW,
        "updated_at": NOW,
    }
    body.update(overrides)
    return body


def edge_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": EDGE_ID,
        "source_id": MEMORY_ID,
        "target_id": OTHER_MEMORY_ID,
        "type": "next_in_session",
        "weight": 1.0,
        "created_at": NOW,
    }
    body.update(overrides)
    return body


def graph_node_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": MEMORY_ID,
        "content": "The user prefers window seats.",
        "memory_type": "episodic",
        "session_id": "s1",
        "occurred_at": None,
    }
    body.update(overrides)
    return body


def links_json() -> dict[str, Any]:
    return {
        "memory_id": MEMORY_ID,
        "entities": ["Caroline"],
        "links": [
            {"edge": edge_json(), "direction": "out", "memory_id": OTHER_MEMORY_ID, "content": "Next turn."}
        ],
    }


def entity_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": ENTITY_ID,
        "name": "Caroline",
        "kind": "name",
        "mentions": 2,
        "created_at": NOW,
    }
    body.update(overrides)
    return body


def activation_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": ACTIVATION_ID,
        "cube_id": CUBE_ID,
        "model_id": "tiny-model",
        "fingerprint": "f" * 64,
        "compatible": True,
        "source": "text",
        "tokens": 12,
        "token_hash": "c" * 64,
        "bytes": 4096,
        "tier": "cpu",
        "precision": "bf16",
        "status": "active",
        "hits": 0,
        "created_at": NOW,
        "last_used_at": None,
        "text": "Caroline likes hiking.",
    }
    body.update(overrides)
    return body


def activation_stats_json() -> dict[str, Any]:
    tier = {"bytes": 0, "entries": 0, "budget_bytes": 1 << 30, "available": True}
    return {
        "tiers": {"gpu": {**tier, "available": False}, "cpu": tier, "disk": tier},
        "hits": 1,
        "misses": 2,
        "evictions": 0,
        "promotions": 0,
        "demotions": 0,
        "model": {"loaded": False},
    }


def context_json() -> dict[str, Any]:
    routing = {"tiers": {"retrieval": "mid", "context": "mid"}, "reasons": {"retrieval": "forced", "context": "forced"},
               "policy": None, "warnings": [], "cost": {"ms": {"retrieval": 9.0, "context": 1.0, "total": 11.0},
                                                        "tokens": 12, "llm_calls": 0},
               "cache": {"hit": False, "kind": None}}
    item = {"memory_id": MEMORY_ID, "content": "Alice's puppy is Rex", "occurred_at": NOW, "session_id": "s1",
            "score": 0.5, "role": "snippet"}
    return {"context": "- Alice's puppy is Rex", "items": [item], "tokens": 12, "abstained": False,
            "full_context": False, "routing": routing}


def forget_request_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": FORGET_REQUEST_ID, "cube_id": CUBE_ID, "subject": "address", "detector": "rules",
                            "policy": "archive", "status": "applied", "memory_ids": [MEMORY_ID], "details": {},
                            "created_at": NOW, "reverted_at": None}
    return {**body, **overrides}


def generate_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "text": " She hikes.",
        "token_ids": [1, 2, 3],
        "finish_reason": "length",
        "model_id": "tiny-model",
        "fingerprint": "f" * 64,
        "activation_id": ACTIVATION_ID,
        "tier_hit": "cpu",
        "reused_tokens": 12,
        "prefill_tokens": 3,
        "prompt_tokens": 15,
        "ttft_ms": 8.5,
        "total_ms": 20.25,
    }
    body.update(overrides)
    return body


def archive_import_json() -> dict[str, Any]:
    return {"cube": cube_json(), "counts": {"memories": 2, "versions": 1, "edges": 1, "entities": 1,
                                            "activations": 0, "adapters": 0},
            "activations_stale": 0, "embeddings": "reused"}


def snapshot_json(**overrides: Any) -> dict[str, Any]:
    return {"id": SNAPSHOT_ID, "cube_id": CUBE_ID, "label": "before", "kind": "manual", "memory_count": 2,
            "size_bytes": 10240, "sha256": "ab" * 32, "created_at": NOW, **overrides}


def adapter_json(**overrides: Any) -> dict[str, Any]:
    return {"id": ADAPTER_ID, "cube_id": CUBE_ID, "name": "adapter", "version": 1, "base_model": "tiny-model",
            "base_fingerprint": "f" * 64, "rank": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"],
            "sha256": "ad" * 32, "size_bytes": 2048, "source": "upload", "status": "active", "created_by": KEY_ID,
            "job_id": None, "metrics": {}, "created_at": NOW, "deleted_at": None, **overrides}


def quotas_json() -> dict[str, Any]:
    return {"tenant_id": TENANT_ID, "quotas": [{"name": "memories", "limit": 10, "used": 2, "default": 10,
                                                "overridden": False}],
            "request_limits": {"import_bytes": 1024, "context_tokens": 32768}}


def canned_response(request: httpx.Request) -> httpx.Response:
    """A valid answer for every route of the API, chosen by method and path shape."""
    method, parts = request.method, request.url.path.strip("/").split("/")
    headers = {"X-Request-ID": "req-" + "-".join(parts)}
    route = (method, *["{}" if _is_id(p) else p for p in parts])

    def ok(body: Any, status: int = 200) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    table: dict[tuple[str, ...], Callable[[], httpx.Response]] = {
        ("GET", "healthz"): lambda: ok({"status": "ok"}),
        ("GET", "readyz"): lambda: ok({"status": "ready", "checks": {}}),
        ("GET", "v1", "whoami"): lambda: ok(
            {"key_id": KEY_ID, "scope": "tenant", "tenant_id": TENANT_ID, "cube_ids": None, "permission": "admin"}
        ),
        ("POST", "v1", "tenants"): lambda: ok(
            {"id": TENANT_ID, "name": "acme", "api_key": "mc_secret", "key_id": KEY_ID}, 201
        ),
        ("GET", "v1", "tenants"): lambda: ok(
            {"tenants": [{"id": TENANT_ID, "name": "acme", "created_at": NOW}]}
        ),
        ("POST", "v1", "tenants", "{}", "keys"): lambda: ok(
            {"id": KEY_ID, "tenant_id": TENANT_ID, "scope": "tenant", "api_key": "mc_k", "created_at": NOW},
            201,
        ),
        ("GET", "v1", "tenants", "{}", "keys"): lambda: ok({"keys": [
            {"id": KEY_ID, "name": "default", "cube_ids": None, "permission": "admin", "created_at": NOW,
             "revoked_at": None}]}),
        ("DELETE", "v1", "keys", "{}"): lambda: ok({"id": KEY_ID, "revoked_at": NOW}),
        ("GET", "v1", "tenants", "{}", "quotas"): lambda: ok(quotas_json()),
        ("PUT", "v1", "tenants", "{}", "quotas"): lambda: ok(quotas_json()),
        ("POST", "v1", "cubes"): lambda: ok(cube_json(), 201),
        ("GET", "v1", "cubes"): lambda: ok({"cubes": [cube_json()]}),
        ("GET", "v1", "cubes", "{}"): lambda: ok(cube_json()),
        ("DELETE", "v1", "cubes", "{}"): lambda: httpx.Response(204, headers=headers),
        ("PATCH", "v1", "cubes", "{}"): lambda: ok(cube_json()),
        ("GET", "v1", "cubes", "{}", "forget-requests"): lambda: ok({"forget_requests": [forget_request_json()]}),
        ("POST", "v1", "forget-requests", "{}", "revert"): lambda: ok(
            forget_request_json(status="reverted", reverted_at=NOW)
        ),
        ("GET", "v1", "cubes", "{}", "export"): lambda: httpx.Response(
            200, content=b'{"a":1}\n{"b":2}\n', headers={**headers, "Content-Type": "application/x-ndjson"}
        ),
        ("POST", "v1", "cubes", "{}", "import"): lambda: ok({"imported": 2, "id_map": {"a": "b"}}, 201),
        ("GET", "v1", "cubes", "{}", "archive"): lambda: httpx.Response(
            200, content=b"tar bytes", headers={**headers, "Content-Type": "application/x-tar"}
        ),
        ("POST", "v1", "cubes", "import-archive"): lambda: ok(archive_import_json(), 201),
        ("POST", "v1", "cubes", "{}", "fork"): lambda: ok(archive_import_json(), 201),
        ("POST", "v1", "cubes", "{}", "snapshots"): lambda: ok(snapshot_json(), 201),
        ("GET", "v1", "cubes", "{}", "snapshots"): lambda: ok({"snapshots": [snapshot_json()]}),
        ("DELETE", "v1", "cubes", "{}", "snapshots", "{}"): lambda: httpx.Response(204, headers=headers),
        ("POST", "v1", "cubes", "{}", "snapshots", "{}", "restore"): lambda: ok(
            {"snapshot_id": SNAPSHOT_ID, "pre_restore_snapshot_id": KEY_ID, "changed": 1, "recreated": 0,
             "archived": 1, "unchanged": 1}
        ),
        ("POST", "v1", "cubes", "{}", "merge"): lambda: ok(
            {"from_cube_id": CUBE_ID, "considered": 3, "admitted": 1, "merged": 1, "rejected": 1}
        ),
        ("POST", "v1", "cubes", "{}", "fuse"): lambda: ok(
            {"into": "activation", "job": job_json(kind="fuse_activation", params={})}, 202
        ),
        ("POST", "v1", "cubes", "{}", "memories"): lambda: ok({"memories": [memory_json()]}, 201),
        ("GET", "v1", "cubes", "{}", "memories"): lambda: ok(
            {"memories": [memory_json()], "next_cursor": None}
        ),
        ("POST", "v1", "cubes", "{}", "messages"): lambda: ok({"memories": [memory_json()]}, 201),
        ("GET", "v1", "memories", "{}"): lambda: ok(memory_json()),
        ("PATCH", "v1", "memories", "{}"): lambda: ok(memory_json(version=2)),
        ("DELETE", "v1", "memories", "{}"): lambda: ok(memory_json(status="deleted", version=2)),
        ("POST", "v1", "memories", "{}", "restore"): lambda: ok(memory_json(version=3)),
        ("GET", "v1", "memories", "{}", "history"): lambda: ok(
            {
                "memory_id": MEMORY_ID,
                "current_version": 2,
                "versions": [
                    {"version": 1, "reason": "update", "created_at": NOW, "snapshot": {"content": "x"}}
                ],
            }
        ),
        ("POST", "v1", "search"): lambda: ok(
            {"results": [{"memory": memory_json(), "score": 0.83}], "took_ms": 4.5}
        ),
        ("POST", "v1", "context"): lambda: ok(context_json()),
        ("POST", "v1", "answer"): lambda: ok({**context_json(), "answer": "Rex", "model": "gpt-4o-mini"}),
        ("GET", "v1", "routing", "stats"): lambda: ok(
            {"requests": 2, "hits": 1, "misses": 1, "hit_rate": 0.5, "tiers": {"retrieval": {"mid": 1}},
             "mean_ms": {"retrieval": {"mid": 12.5}}, "cache_backend": "memory"}
        ),
        ("GET", "v1", "memories", "{}", "links"): lambda: ok(links_json()),
        ("GET", "v1", "cubes", "{}", "graph"): lambda: ok(
            {
                "nodes": [graph_node_json(), graph_node_json(id=OTHER_MEMORY_ID, content="Next turn.")],
                "edges": [edge_json()],
                "next_cursor": None,
            }
        ),
        ("GET", "v1", "cubes", "{}", "entities"): lambda: ok(
            {"entities": [entity_json()], "next_cursor": None}
        ),
        ("POST", "v1", "cubes", "{}", "activations"): lambda: ok(activation_json(), 201),
        ("GET", "v1", "cubes", "{}", "activations"): lambda: ok({"activations": [activation_json()]}),
        ("GET", "v1", "activations", "stats"): lambda: ok(activation_stats_json()),
        ("DELETE", "v1", "activations", "{}"): lambda: ok(activation_json(status="deleted", tier=None)),
        ("POST", "v1", "generate"): lambda: ok(generate_json()),
        ("POST", "v1", "cubes", "{}", "adapters"): lambda: ok(adapter_json(), 201),
        ("GET", "v1", "cubes", "{}", "adapters"): lambda: ok({"adapters": [adapter_json()]}),
        ("POST", "v1", "cubes", "{}", "adapters", "distill"): lambda: ok(job_json(kind="distill", params={}), 202),
        ("GET", "v1", "adapters", "{}"): lambda: ok(adapter_json()),
        ("DELETE", "v1", "adapters", "{}"): lambda: ok(adapter_json(status="deleted", deleted_at=NOW)),
        ("POST", "v1", "adapters", "{}", "restore"): lambda: ok(adapter_json()),
        ("GET", "v1", "jobs"): lambda: ok({"jobs": [job_json()]}),
        ("GET", "v1", "jobs", "{}"): lambda: ok(job_json(status="done", progress=1.0)),
        ("POST", "v1", "jobs", "{}", "cancel"): lambda: ok(job_json(status="cancelled")),
        ("POST", "v1", "cubes", "{}", "consolidate"): lambda: ok(job_json(), 202),
        ("POST", "v1", "cubes", "{}", "forget"): lambda: ok(job_json(kind="forget", params={}), 202),
        ("GET", "v1", "cubes", "{}", "policy"): lambda: ok(policy_json()),
        ("GET", "v1", "cubes", "{}", "policy", "preview"): lambda: ok(
            {"cube_id": CUBE_ID, "policy": policy_json(), "active": 3, "considered": 2, "total": 1,
             "memories": [{"memory": memory_json(), "retention": 0.1234, "reason": "forgotten: retention"}]}
        ),
        ("PUT", "v1", "cubes", "{}", "policy"): lambda: ok(
            policy_json(threshold=0.5, is_default=False, updated_at=NOW)
        ),
        ("POST", "v1", "cubes", "{}", "purge"): lambda: ok({"purged": 1, "memory_ids": [MEMORY_ID]}),
        ("POST", "v1", "memories", "{}", "feedback"): lambda: ok(
            memory_json(feedback={"useful": 1, "not_useful": 0, "wrong": 0})
        ),
    }
    handler = table.get(route)
    if handler is None:
        return httpx.Response(
            404,
            json={"error": {"code": "not_found", "message": f"no route {route}", "details": {}}},
            headers=headers,
        )
    return handler()


def _is_id(segment: str) -> bool:
    try:
        uuid.UUID(segment)
    except ValueError:
        return False
    return True


Step = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


@dataclass
class Recorder:
    """A scripted server: answers each request with the next step (a response, an exception to raise,
    or a function), then with ``canned_response`` once the script is used up. Keeps every request and
    its body, read at send time so streamed bodies are captured."""

    script: list[Step] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(request.read())
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            if isinstance(step, httpx.Response):
                return step
            return step(request)
        return canned_response(request)

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(await request.aread())
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            if isinstance(step, httpx.Response):
                return step
            return step(request)
        return canned_response(request)

    def json(self, index: int = -1) -> Any:
        return json.loads(self.bodies[index])

    @property
    def calls(self) -> int:
        return len(self.requests)


@dataclass
class SleepLog:
    """Replaces the backoff sleep: records the delays instead of waiting."""

    delays: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.delays.append(seconds)


# Deterministic jitter: rng() == 0 makes each delay exactly half the nominal one.
NO_JITTER = memcubed.RetryPolicy(max_retries=2, initial_delay=0.5, max_delay=8.0, rng=lambda: 0.0)


@dataclass
class LiveTenant:
    """A tenant on the live server, made for one test."""

    url: str
    admin_key: str
    tenant_id: str
    api_key: str
