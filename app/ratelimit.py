"""Request rates per API key and per tenant (issue 17), with the ``limits`` library's moving window.

With MEMCUBED_REDIS_URL the windows live in Redis, so every API process draws on one budget; without it, in this
process. A limiter must never fail a request: when Redis does not answer, the call is counted in this process's
memory instead (logged once per outage) and Redis is tried again a few seconds later.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter
from limits.util import WindowStats

from app.config import Settings
from app.errors import RateLimited
from app.principal import Principal

log = logging.getLogger(__name__)

# After Redis failed, calls stay in memory this long before Redis is tried again (so an outage costs no time-out
# on every request).
REDIS_RETRY_SECONDS = 5.0


class RateLimiter:
    """Refuses a request over its key's or its tenant's rate; admin keys are never limited."""

    def __init__(self, settings: Settings) -> None:
        self.limits: tuple[tuple[str, str, RateLimitItem], ...] = (
            ("key", settings.rate_limit_key, parse(settings.rate_limit_key)),
            ("tenant", settings.rate_limit_tenant, parse(settings.rate_limit_tenant)),
        )
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.shared: MovingWindowRateLimiter | None = None
        if settings.redis_url:
            storage = RedisStorage(settings.redis_url, key_prefix=settings.rate_limit_prefix, wrap_exceptions=True,
                                   socket_connect_timeout=0.5, socket_timeout=0.5)
            self.shared = MovingWindowRateLimiter(storage)
        self.redis_down = False
        self.retry_redis_at = 0.0
        self.lock = threading.Lock()

    def check(self, principal: Principal) -> None:
        """Count one request of ``principal``; raise RateLimited (with the seconds to wait) when it is over.

        The key's window is counted first, so a key over its own rate never spends its tenant's budget.
        """
        if principal.scope == "admin":
            return
        owners = {"key": str(principal.key_id), "tenant": str(principal.tenant_id)}
        for scope, text, item in self.limits:
            refused = self._hit(item, scope, owners[scope])
            if refused is not None:
                wait = max(1, math.ceil(refused.reset_time - time.time()))
                raise RateLimited(f"over the {scope}'s rate limit of {text}; retry in {wait} s",
                                  {"limit": text, "scope": scope}, retry_after=wait)

    def _hit(self, item: RateLimitItem, *identifiers: str) -> WindowStats | None:
        """Count one hit; the window's state when it was refused, else None."""
        if self.shared is not None and time.monotonic() >= self.retry_redis_at:
            try:
                result = _hit(self.shared, item, identifiers)
            except StorageError as exc:
                with self.lock:
                    if not self.redis_down:
                        log.warning("rate limits: Redis does not answer (%s); counting in this process until "
                                    "it does", type(exc.storage_error).__name__)
                    self.redis_down = True
                    self.retry_redis_at = time.monotonic() + REDIS_RETRY_SECONDS
            else:
                if self.redis_down:
                    with self.lock:
                        self.redis_down = False
                    log.warning("rate limits: Redis answers again; the windows are shared again")
                return result
        return _hit(self.local, item, identifiers)


def _hit(limiter: MovingWindowRateLimiter, item: RateLimitItem, identifiers: tuple[str, ...]) -> WindowStats | None:
    return None if limiter.hit(item, *identifiers) else limiter.get_window_stats(item, *identifiers)
