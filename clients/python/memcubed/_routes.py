"""Every server route and the SDK method that calls it.

A test walks the server's ``/openapi.json`` and fails when an operation is missing here (or listed here
but gone from the server), and another checks that each name resolves to a method on both clients, so a
route added to the service cannot be forgotten in the SDK. Path parameters are compared by position,
not by name.
"""

from __future__ import annotations

__all__ = ["ROUTES"]

# (HTTP method, path template) -> attribute path on Client / AsyncClient.
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "health",
    ("GET", "/readyz"): "ready",
    ("POST", "/v1/tenants"): "tenants.create",
    ("GET", "/v1/tenants"): "tenants.list",
    ("POST", "/v1/tenants/{tenant_id}/keys"): "keys.create",
    ("DELETE", "/v1/keys/{key_id}"): "keys.revoke",
    ("POST", "/v1/cubes"): "cubes.create",
    ("GET", "/v1/cubes"): "cubes.list",
    ("GET", "/v1/cubes/{cube_id}"): "cubes.get",
    ("PATCH", "/v1/cubes/{cube_id}"): "cubes.update",
    ("DELETE", "/v1/cubes/{cube_id}"): "cubes.delete",
    ("GET", "/v1/cubes/{cube_id}/forget-requests"): "forget_requests.list",
    ("POST", "/v1/forget-requests/{request_id}/revert"): "forget_requests.revert",
    ("GET", "/v1/cubes/{cube_id}/export"): "cubes.export",
    ("POST", "/v1/cubes/{cube_id}/import"): "cubes.import_",
    ("GET", "/v1/cubes/{cube_id}/archive"): "cubes.archive",
    ("POST", "/v1/cubes/import-archive"): "cubes.import_archive",
    ("POST", "/v1/cubes/{cube_id}/fork"): "cubes.fork",
    ("POST", "/v1/cubes/{cube_id}/merge"): "cubes.merge",
    ("POST", "/v1/cubes/{cube_id}/fuse"): "cubes.fuse",
    ("POST", "/v1/cubes/{cube_id}/snapshots"): "snapshots.create",
    ("GET", "/v1/cubes/{cube_id}/snapshots"): "snapshots.list",
    ("POST", "/v1/cubes/{cube_id}/snapshots/{snapshot_id}/restore"): "snapshots.restore",
    ("POST", "/v1/cubes/{cube_id}/memories"): "memories.add_many",
    ("GET", "/v1/cubes/{cube_id}/memories"): "memories.list",
    ("GET", "/v1/memories/{memory_id}"): "memories.get",
    ("PATCH", "/v1/memories/{memory_id}"): "memories.update",
    ("DELETE", "/v1/memories/{memory_id}"): "memories.delete",
    ("POST", "/v1/memories/{memory_id}/restore"): "memories.restore",
    ("GET", "/v1/memories/{memory_id}/history"): "memories.history",
    ("GET", "/v1/memories/{memory_id}/links"): "memories.links",
    ("POST", "/v1/cubes/{cube_id}/messages"): "messages.add",
    ("POST", "/v1/search"): "search",
    ("POST", "/v1/context"): "context",
    ("POST", "/v1/answer"): "answer",
    ("GET", "/v1/routing/stats"): "routing.stats",
    ("GET", "/v1/whoami"): "whoami",
    ("GET", "/v1/cubes/{cube_id}/graph"): "cubes.graph",
    ("GET", "/v1/cubes/{cube_id}/entities"): "cubes.entities",
    ("POST", "/v1/cubes/{cube_id}/activations"): "activations.create",
    ("GET", "/v1/cubes/{cube_id}/activations"): "activations.list",
    ("GET", "/v1/activations/stats"): "activations.stats",
    ("DELETE", "/v1/activations/{activation_id}"): "activations.delete",
    ("POST", "/v1/generate"): "generate",
    ("POST", "/v1/cubes/{cube_id}/adapters"): "adapters.upload",
    ("GET", "/v1/cubes/{cube_id}/adapters"): "adapters.list",
    ("POST", "/v1/cubes/{cube_id}/adapters/distill"): "adapters.distill",
    ("GET", "/v1/adapters/{adapter_id}"): "adapters.get",
    ("DELETE", "/v1/adapters/{adapter_id}"): "adapters.delete",
    ("POST", "/v1/adapters/{adapter_id}/restore"): "adapters.restore",
    ("GET", "/v1/jobs"): "jobs.list",
    ("GET", "/v1/jobs/{job_id}"): "jobs.get",
    ("POST", "/v1/jobs/{job_id}/cancel"): "jobs.cancel",
    ("POST", "/v1/cubes/{cube_id}/consolidate"): "cubes.consolidate",
    ("POST", "/v1/cubes/{cube_id}/forget"): "cubes.forget",
    ("GET", "/v1/cubes/{cube_id}/policy"): "cubes.get_policy",
    ("PUT", "/v1/cubes/{cube_id}/policy"): "cubes.set_policy",
    ("POST", "/v1/cubes/{cube_id}/purge"): "cubes.purge",
    ("POST", "/v1/memories/{memory_id}/feedback"): "memories.feedback",
}
