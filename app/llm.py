"""The one client for every LLM step (summaries, forget-request classifier, supersession judge, extraction,
answers): any OpenAI-compatible ``/chat/completions`` endpoint set by ``MEMCUBED_LLM_*``. Every caller also works
without one, so a slow or failing endpoint degrades the service instead of stalling it:

- time-outs: ``llm_connect_timeout_seconds`` to connect, ``llm_timeout_seconds`` for the reply;
- a bounded retry (``llm_retries``) of transient errors: connection errors, 429 and 5xx. A time-out is not
  retried: it already waited the whole read time-out;
- a circuit breaker per endpoint and process: after ``llm_breaker_failures`` failed calls in a row it opens for
  ``llm_breaker_cooldown_seconds``, and calls fail at once (``circuit_open``) so callers take their no-LLM path
  without waiting; then one trial call goes through, and its success closes it.

What happened is reported per request: a step's caller runs inside ``tracked()``; every call and every fallback
lands in its ``Usage``, which responses show as ``llm: {"used", "fallback"}``. Calls by outcome are counted for
``/metrics`` (``memcubed_llm_calls_total``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from prometheus_client import Counter

from app.config import Settings

Fallback = Literal["timeout", "circuit_open", "error", "not_configured"]
OUTCOMES = ("ok", "timeout", "error", "circuit_open")
CALLS = Counter("memcubed_llm_calls_total", "LLM calls by outcome: ok, timeout, error (after retries) or "
                "circuit_open (skipped: the breaker is open).", ["outcome"])
for _outcome in OUTCOMES:
    CALLS.labels(_outcome)  # every series exists from the start
RETRY_BACKOFF_SECONDS = 0.2


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int  # prompt + completion tokens as the endpoint reports them (0 when it does not)


class LLMUnavailable(Exception):
    """The call did not give a reply: ``reason`` says why (the caller takes its no-LLM path)."""

    def __init__(self, reason: Fallback, message: str) -> None:
        super().__init__(message)
        self.reason: Fallback = reason


class Breaker:
    """Closed → open after ``failures`` failed calls in a row → after ``cooldown`` seconds one trial call (half
    open): its success closes the breaker, its failure opens it again. Thread-safe; the lock is never held during
    a call, so concurrent calls stay concurrent."""

    def __init__(self, failures: int, cooldown: float) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self._lock = threading.Lock()
        self._failed = 0
        self._opened_at: float | None = None
        self._trial = False

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if self._trial or time.monotonic() - self._opened_at < self.cooldown:
                return False
            self._trial = True
            return True

    def succeeded(self) -> None:
        with self._lock:
            self._failed, self._opened_at, self._trial = 0, None, False

    def failed(self) -> None:
        with self._lock:
            self._failed += 1
            if self._trial or self._failed >= self.failures:
                self._opened_at, self._trial = time.monotonic(), False

    def state(self) -> tuple[Literal["closed", "open", "half_open"], int, float]:
        """The state, the failures in a row, and the seconds left before a trial call may go through."""
        with self._lock:
            if self._opened_at is None:
                return "closed", self._failed, 0.0
            left = self.cooldown - (time.monotonic() - self._opened_at)
            return ("open" if left > 0 else "half_open"), self._failed, max(0.0, left)


_BREAKERS: dict[tuple[str, int, float], Breaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker(settings: Settings) -> Breaker | None:
    """This process's breaker of the configured endpoint; None without one."""
    if not settings.llm_base_url:
        return None
    key = (settings.llm_base_url.rstrip("/"), settings.llm_breaker_failures, settings.llm_breaker_cooldown_seconds)
    with _BREAKERS_LOCK:
        found = _BREAKERS.get(key)
        if found is None:
            found = _BREAKERS[key] = Breaker(settings.llm_breaker_failures, settings.llm_breaker_cooldown_seconds)
        return found


def degraded(settings: Settings) -> str | None:
    """What ``/readyz`` says while the breaker is not closed; None when it is (or no LLM is configured)."""
    b = breaker(settings)
    if b is None:
        return None
    state, failed, left = b.state()
    if state == "closed":
        return None
    when = f"for {left:.0f} s more, then one trial call" if state == "open" else "until the next call succeeds"
    return (f"circuit {state} after {failed} failed calls in a row: LLM steps take their no-LLM path {when}")


# -- what one request's LLM steps did ---------------------------------------------------------------------------

@dataclass
class Usage:
    calls: int = 0  # replies received
    fallback: Fallback | None = None  # why a step took its no-LLM path (the first reason seen)

    def fell_back(self, reason: Fallback) -> None:
        if self.fallback is None:
            self.fallback = reason

    def report(self) -> dict[str, Any]:
        return {"used": self.calls > 0, "fallback": self.fallback}


_USAGE: ContextVar[Usage | None] = ContextVar("memcubed_llm_usage", default=None)


@contextmanager
def tracked() -> Iterator[Usage]:
    """Collect the LLM calls and fallbacks of the work inside (nested: the outer collection gets them)."""
    current = _USAGE.get()
    if current is not None:
        yield current
        return
    usage = Usage()
    token = _USAGE.set(usage)
    try:
        yield usage
    finally:
        _USAGE.reset(token)


def current() -> Usage:
    """This request's collection (an empty one outside ``tracked``)."""
    return _USAGE.get() or Usage()


def fell_back(reason: Fallback | BaseException) -> None:
    """A step took its no-LLM path: for ``reason``, or because of this exception (a failed call gives its
    reason; a reply that could not be read is an ``error``)."""
    usage = _USAGE.get()
    if usage is not None:
        usage.fell_back(reason.reason if isinstance(reason, LLMUnavailable)
                        else "error" if isinstance(reason, BaseException) else reason)


# -- the call ---------------------------------------------------------------------------------------------------

def _transient(exc: httpx.HTTPError) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.TimeoutException)


def _post(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """One reply, retrying transient errors ``llm_retries`` times; raises the last error."""
    assert settings.llm_base_url is not None
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
    timeout = httpx.Timeout(settings.llm_timeout_seconds, connect=settings.llm_connect_timeout_seconds)
    url = f"{settings.llm_base_url.rstrip('/')}/chat/completions"
    for attempt in range(settings.llm_retries + 1):
        try:
            r = httpx.post(url, json=body, headers=headers, timeout=timeout)
            r.raise_for_status()
            data: dict[str, Any] = r.json()
            return data
        except httpx.HTTPError as exc:
            if attempt == settings.llm_retries or not _transient(exc):
                raise
            time.sleep(RETRY_BACKOFF_SECONDS * (attempt + 1))
    raise AssertionError("unreachable")


def chat(settings: Settings, model: str, messages: list[dict[str, str]], max_tokens: int | None = None,
         json_mode: bool = False) -> tuple[str, int]:
    """One deterministic chat completion on the configured endpoint: (text, tokens used). Raises
    ``LLMUnavailable`` (and records it in the request's ``Usage``) when no reply came; a reply whose content
    is malformed raises ``KeyError`` / ``TypeError`` / ``ValueError`` for the caller to report."""
    b = breaker(settings)
    if b is None:
        raise LLMUnavailable("not_configured", "no LLM is configured (MEMCUBED_LLM_BASE_URL)")
    if not b.allow():
        CALLS.labels("circuit_open").inc()
        exc = LLMUnavailable("circuit_open", "the LLM circuit breaker is open after repeated failures")
        fell_back(exc)
        raise exc
    body: dict[str, Any] = {"model": model, "temperature": 0, "messages": messages}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if json_mode:
        body["response_format"] = {"type": "json_object"}
    try:
        data = _post(settings, body)
    except (httpx.HTTPError, ValueError) as err:  # ValueError: a body that is not JSON
        b.failed()
        reason: Fallback = "timeout" if isinstance(err, httpx.TimeoutException) else "error"
        CALLS.labels(reason).inc()
        exc = LLMUnavailable(reason, f"the LLM call failed ({type(err).__name__}): {err}")
        fell_back(exc)
        raise exc from err
    b.succeeded()
    CALLS.labels("ok").inc()
    usage = _USAGE.get()
    if usage is not None:
        usage.calls += 1
    tokens = int((data.get("usage") or {}).get("total_tokens") or 0)
    return str(data["choices"][0]["message"]["content"]).strip(), tokens
