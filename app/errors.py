"""Domain errors. They know nothing of HTTP; ``app.api.errors`` maps them to status codes."""

from __future__ import annotations

from typing import Any


class MemcubedError(Exception):
    """Base of every error the service raises on purpose."""

    code = "error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class Unauthenticated(MemcubedError):
    code = "unauthenticated"


class PermissionDenied(MemcubedError):
    code = "permission_denied"


class NotFound(MemcubedError):
    code = "not_found"

    def __init__(self, kind: str, object_id: object) -> None:
        super().__init__(f"{kind} {object_id} not found", {"kind": kind, "id": str(object_id)})


class Conflict(MemcubedError):
    code = "conflict"


class PayloadTooLarge(MemcubedError):
    code = "payload_too_large"


class QuotaExceeded(MemcubedError):
    """A write would take a tenant past one of its stock quotas (memories, cubes, snapshots, adapter or
    activation bytes); nothing was written. Per-request sizes are ``PayloadTooLarge`` instead."""

    code = "quota_exceeded"

    def __init__(self, quota: str, limit: int, used: int, requested: int) -> None:
        super().__init__(f"the tenant's {quota} quota is {limit}: {used} used, {requested} more requested",
                         {"quota": quota, "limit": limit, "used": used, "requested": requested})


class RateLimited(MemcubedError):
    """Over a key's or a tenant's request rate; ``retry_after`` is the whole seconds until a request is counted."""

    code = "rate_limited"

    def __init__(self, message: str, details: dict[str, Any], retry_after: int) -> None:
        super().__init__(message, details)
        self.retry_after = retry_after


class InvalidInput(MemcubedError):
    code = "invalid_input"


class ConfigurationError(MemcubedError):
    """The service cannot start or serve as configured (e.g. embedding model mismatch)."""

    code = "configuration_error"


class NotReady(MemcubedError):
    code = "not_ready"


class NotCaughtUp(MemcubedError):
    """This process has not applied the change a request named (``X-Memcubed-Min-Seq``) within the wait allowed:
    another process (or a retry a moment later) answers it."""

    code = "not_caught_up"
    retry_after = 1
