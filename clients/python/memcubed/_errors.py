"""Exceptions. One root, :class:`MemcubedError`, so callers can catch everything the SDK raises at once."""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "ConflictError",
    "MemcubedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "ServerError",
    "ValidationError",
]


class MemcubedError(Exception):
    """Root of every error the SDK raises.

    ``status`` is the HTTP status (``None`` when no response arrived), ``code``/``message``/``details``
    come from the server's error envelope, ``request_id`` from the ``X-Request-ID`` header, so a failure
    can be matched with the server's logs.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details: dict[str, Any] = details if details is not None else {}
        self.request_id = request_id

    def __str__(self) -> str:
        context = []
        if self.status is not None:
            context.append(f"status={self.status}")
        if self.code:
            context.append(f"code={self.code}")
        if self.request_id:
            context.append(f"request_id={self.request_id}")
        return f"{self.message} ({', '.join(context)})" if context else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, code={self.code!r}, "
            f"request_id={self.request_id!r})"
        )


class APIConnectionError(MemcubedError):
    """No response came back: the server could not be reached or the connection broke."""


class APITimeoutError(APIConnectionError):
    """The request timed out. A subclass of :class:`APIConnectionError`: both mean "no answer"."""


class APIStatusError(MemcubedError):
    """The server answered with an error status. Statuses without a dedicated subclass land here."""


class ValidationError(APIStatusError):
    """400 or 422: the request was malformed or a field is invalid (``details`` names it)."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, unknown or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but its scope does not allow this route (e.g. admin routes)."""


class QuotaExceededError(PermissionDeniedError):
    """403 ``quota_exceeded``: the write would take the tenant past a quota; nothing was written.
    ``details`` names it: ``{"quota", "limit", "used", "requested"}``."""


class NotFoundError(APIStatusError):
    """404: unknown object, or one that belongs to another tenant."""


class ConflictError(APIStatusError):
    """409: e.g. a cube name that already exists in the tenant."""


class PayloadTooLargeError(APIStatusError):
    """413: a memory, batch or body above the server's configured limits."""


class RateLimitError(APIStatusError):
    """429: too many requests. ``retry_after`` holds the server's ``Retry-After`` in seconds, if sent."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: the server failed. Retried automatically for 502/503/504 when the request is safe to repeat."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitError,
}


def error_class_for(status: int, code: str | None = None) -> type[APIStatusError]:
    """The exception class for an HTTP error status (and the envelope's code, where one status means two)."""
    if status >= 500:
        return ServerError
    if status == 403 and code == "quota_exceeded":
        return QuotaExceededError
    return _BY_STATUS.get(status, APIStatusError)
