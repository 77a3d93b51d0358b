"""The dashboard's locks: trusted `Host` and `Origin`, security headers, and the admin token.

`Guard` is a pure ASGI middleware in front of every route. A `Host` that is not trusted gets
403 (a DNS-rebinding page cannot read event bodies); a state-changing request from an untrusted
`Origin`, or one the browser marks `Sec-Fetch-Site: cross-site`, gets 403 (no CSRF); every answer
carries the CSP and the other headers below. `require_admin` guards replay and purge: no token
configured → 403 (read-only), a missing or wrong bearer token → 401, a body that is not JSON → 415.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        b"font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

ASGI = Any


def host_name(value: str) -> str:
    """`127.0.0.1:8080` -> `127.0.0.1`, `[::1]:80` -> `::1`; lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """Checks `Host` and `Origin` against `trusted` host names and adds the security headers."""

    def __init__(self, app: ASGI, trusted: Iterable[str]) -> None:
        self.app = app
        self.trusted = frozenset(host.lower() for host in trusted)

    def allows(self, host: str | None) -> bool:
        return host is not None and ("*" in self.trusted or host in self.trusted)

    async def __call__(self, scope: ASGI, receive: ASGI, send: ASGI) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        refusal = self.refusal(scope["method"], headers)

        async def secured(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        if refusal is None:
            await self.app(scope, receive, secured)
            return
        body = json.dumps({"detail": refusal}).encode()
        await secured(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def refusal(self, method: str, headers: dict[str, str]) -> str | None:
        """Why this request is refused, or None."""
        host = headers.get("host")
        if not self.allows(host_name(host) if host else None):
            return f"host {host!r} is not a trusted dashboard host"
        if method.upper() in UNSAFE:
            if headers.get("sec-fetch-site") == "cross-site":
                return "cross-site requests may not change anything"
            origin = headers.get("origin")
            if origin is not None and not self.allows(urlsplit(origin).hostname):
                return f"origin {origin!r} is not a trusted dashboard origin"
        return None


def require_admin(token: str | None) -> Any:
    """A FastAPI dependency: the request carries `Authorization: Bearer <token>` and a JSON body."""

    async def check(request: Request) -> None:
        if token is None:
            raise HTTPException(403, "the dashboard is read-only: no admin token is configured (docs/dashboard.md)")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, "replay and purge need the admin token", headers={"WWW-Authenticate": "Bearer"})
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise HTTPException(415, "send the request body as application/json")

    return check
