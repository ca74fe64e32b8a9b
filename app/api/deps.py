"""Dependencies: the container, the caller's principal, and idempotency keys."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.container import Container
from app.errors import Unauthenticated
from app.services.base import Principal

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
    return container(request).auth.authenticate(creds.credentials)


C = Annotated[Container, Depends(container)]
P = Annotated[Principal, Depends(principal)]
IdemKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200,
           description="Retrying a POST with the same key returns the first result instead of writing twice."),
]
