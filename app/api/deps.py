"""Dependencies: the container, the caller's principal (rate-limited), and idempotency keys."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app import observability
from app.container import Container
from app.errors import InvalidInput, PayloadTooLarge, Unauthenticated
from app.principal import Principal

MIN_SEQ = "X-Memcubed-Min-Seq"
"""Read-your-writes across processes: the request is answered once this process applied that change."""

bearer = HTTPBearer(auto_error=False, description="An admin or tenant API key")


def container(request: Request) -> Container:
    return cast(Container, request.app.state.container)


def principal(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    if creds is None:
        if request.headers.get("authorization"):
            raise Unauthenticated("Authorization header must be 'Bearer <key>'")
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
    c = container(request)
    found = c.auth.authenticate(creds.credentials)
    observability.bind(request.scope, found.tenant_id)
    if c.limiter is not None:
        # Here, so that every authenticated route counts and nothing else does (health, metrics, console pages).
        c.limiter.check(found)
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
