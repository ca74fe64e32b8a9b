"""Dependencies: the container, the caller's principal (rate-limited), and idempotency keys."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from app import observability
from app.api.errors import domain_response
from app.container import Container
from app.errors import InvalidInput, MemcubedError, PayloadTooLarge, Unauthenticated
from app.principal import Principal

MIN_SEQ = "X-Memcubed-Min-Seq"
"""Read-your-writes across processes: the request is answered once this process applied that change."""

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
CALLER = "memcubed_caller"  # where CallerBeforeBody leaves the principal it found

bearer = HTTPBearer(auto_error=False, description="An admin or tenant API key")


def container(request: Request) -> Container:
    return cast(Container, request.app.state.container)


def caller(c: Container, scope: Scope, raw: str) -> Principal:
    """The key's principal, counted against its rates (every authenticated route counts, nothing else does:
    health, metrics, console pages)."""
    found = c.auth.authenticate(raw)
    observability.bind(scope, found.tenant_id)
    if c.limiter is not None:
        c.limiter.check(found)
    return found


class CallerBeforeBody:
    """Authenticates and rate-limits a request that carries a body before the body is read.

    FastAPI reads and parses a body before it runs dependencies, so a flood of megabyte bodies over its rate would
    each be parsed only to be refused: here the refusal comes first, and the principal found is handed to the
    ``principal`` dependency (``scope["state"]``) so the request is counted once.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        auth = dict(scope.get("headers") or []).get(b"authorization", b"") if scope["type"] == "http" else b""
        raw = auth[7:].decode(errors="replace").strip() if auth[:7].lower() == b"bearer " else ""
        if not raw or scope["method"] not in BODY_METHODS or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)  # the principal dependency answers for anything else
            return
        c = cast(Container, scope["app"].state.container)
        try:
            found = await run_in_threadpool(caller, c, scope, raw)
        except MemcubedError as exc:
            await domain_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})[CALLER] = found
        await self.app(scope, receive, send)


def principal(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    if creds is None:
        if request.headers.get("authorization"):
            raise Unauthenticated("Authorization header must be 'Bearer <key>'")
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
    c = container(request)
    known = getattr(request.state, CALLER, None)
    found = known if isinstance(known, Principal) else caller(c, request.scope, creds.credentials)
    min_seq = request.headers.get(MIN_SEQ)
    if min_seq is not None:
        if not min_seq.isdigit() or len(min_seq) > 19:
            raise InvalidInput(f"{MIN_SEQ} must be a change number (X-Memcubed-Seq of a write)", {"header": MIN_SEQ})
        c.caught_up(int(min_seq))
    return found


C = Annotated[Container, Depends(container)]
P = Annotated[Principal, Depends(principal)]
IdemKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200,
           description="Retrying a POST with the same key returns the first result instead of writing twice."),
]


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The whole request body, refused (413) as soon as it passes ``limit``, before it is all in memory."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"{what} is over {limit} bytes", {"limit": limit})
        chunks.append(chunk)
    return b"".join(chunks)
