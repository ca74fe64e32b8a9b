"""The console: a static single-page app at ``/console`` that calls this REST API from the browser.

The page holds the API key in ``sessionStorage`` and sends it as ``Authorization: Bearer``; it never uses
cookies, so a cross-site request cannot carry the key (that is the CSRF protection). ``SameOriginWrites``
adds a second line: a state-changing ``/v1`` request that a browser marks with a foreign ``Origin`` is refused.
SDKs and curl send no ``Origin`` and are unaffected.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.deps import P
from app.api.errors import envelope
from app.errors import NotFound
from app.schemas.admin import WhoAmI

STATIC = Path(__file__).resolve().parents[2] / "console" / "static"
# Only the files shipped in the package are served: a fixed map, so no request path reaches the filesystem.
FILES = {p.relative_to(STATIC).as_posix(): p for p in STATIC.rglob("*") if p.is_file()}
MEDIA = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

router = APIRouter(tags=["console"])


@router.get("/v1/whoami", response_model=WhoAmI, tags=["admin"])
def whoami(p: P) -> WhoAmI:
    return WhoAmI(key_id=p.key_id, scope=p.scope, tenant_id=p.tenant_id, permission=p.permission,
                  cube_ids=sorted(p.cube_ids, key=str) if p.cube_ids is not None else None)


def _file(name: str) -> FileResponse:
    path = FILES.get(name or "index.html")
    if path is None:
        raise NotFound("file", name)
    return FileResponse(path, media_type=MEDIA.get(path.suffix, "application/octet-stream"),
                        headers=SECURITY_HEADERS)


@router.get("/console", include_in_schema=False)
def console_page() -> FileResponse:
    return _file("index.html")


@router.get("/console/{name:path}", include_in_schema=False)
def console_file(name: str) -> FileResponse:
    return _file(name)


UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SameOriginWrites:
    """Refuses (403) a state-changing ``/v1`` request whose ``Origin`` header names another site than the one
    it was sent to (compared by host and port, so a TLS-terminating proxy that keeps ``Host`` still passes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE and scope["path"].startswith("/v1/"):
            headers = dict(scope["headers"])
            origin = headers.get(b"origin")
            if origin is not None and urlsplit(origin.decode(errors="replace")).netloc != headers.get(
                    b"host", b"").decode(errors="replace"):
                response = envelope(403, "permission_denied", "cross-origin request refused",
                                    {"origin": origin.decode(errors="replace")})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
