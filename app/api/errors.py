"""The only place domain errors become HTTP responses: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import errors
from app.api import metrics
from app.redact import redact, redact_json

log = logging.getLogger(__name__)

STATUS: dict[type[errors.MemcubedError], int] = {
    errors.Unauthenticated: 401,
    errors.PermissionDenied: 403,
    errors.QuotaExceeded: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.InvalidInput: 422,
    errors.RateLimited: 429,
    errors.NotReady: 503,
    errors.NotCaughtUp: 503,
    errors.ConfigurationError: 503,
}

HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "permission_denied", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
              422: "validation_error", 429: "rate_limited"}


def envelope(status: int, code: str, message: str, details: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": redact(message), "details": redact_json(details or {})}}
    return JSONResponse(body, status_code=status, headers=headers)


LOCATIONS = ("body", "query", "path", "header", "cookie")


def _field(loc: tuple[Any, ...]) -> str:
    """``("body", "memories", 0, "content")`` → ``memories.0.content``; only the leading location is dropped,
    so a field that happens to be called ``query`` or ``path`` keeps its name."""
    parts = [str(p) for p in (loc[1:] if loc and loc[0] in LOCATIONS else loc)]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def domain_response(exc: errors.MemcubedError) -> JSONResponse:
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, errors.RateLimited | errors.NotCaughtUp):
        headers = {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, errors.QuotaExceeded):
        metrics.count_quota_refusal(str(exc.details["quota"]))
    return envelope(status, exc.code, exc.message, exc.details, headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.MemcubedError)
    async def domain_error(_: Request, exc: errors.MemcubedError) -> JSONResponse:
        return domain_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg")), "type": str(e.get("type"))}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        return envelope(422, "validation_error", f"invalid request: {summary}", {"errors": problems})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return envelope(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return envelope(500, "internal_error", "internal server error; the request id is in X-Request-ID")
