"""When to retry and how long to wait. Pure functions, shared by the sync and async clients.

A request is retried only when repeating it cannot write twice: GET/PATCH/DELETE (PATCH sets the same
fields again), and POSTs that carry an ``Idempotency-Key`` (the server answers a repeat with the first
result). The SDK puts a fresh key on every POST, reused across the retries of that one call.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RETRY_STATUSES", "RetryPolicy", "is_retryable_request", "parse_retry_after"]

RETRY_STATUSES = frozenset({429, 502, 503, 504})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    Attempt ``n`` (0-based) waits ``min(max_delay, initial_delay * 2**n)``, of which the upper half is
    random ("equal jitter"), so many clients failing together do not retry in lockstep yet each still
    waits at least half the nominal delay. A ``Retry-After`` up to ``max_retry_after`` seconds replaces
    the computed delay.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry number ``attempt + 1``."""
        if retry_after is not None and 0 <= retry_after <= self.max_retry_after:
            return retry_after
        nominal = min(self.max_delay, self.initial_delay * (2**attempt))
        return nominal / 2 + self.rng() * nominal / 2


def is_retryable_request(method: str, headers: Mapping[str, str]) -> bool:
    """Whether the request may be sent again without risking a second write."""
    method = method.upper()
    if method in _SAFE_METHODS:
        return True
    return method == "POST" and any(k.lower() == "idempotency-key" for k in headers)


def parse_retry_after(value: str | None, *, now: Callable[[], datetime] | None = None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date. ``None`` when absent or bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = now() if now is not None else datetime.now(UTC)
        seconds = (when - current).total_seconds()
        return max(0.0, seconds)
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds
