"""Security headers on every HTTP response, errors and 404s included: a small ASGI middleware.

================================  ==============================================================
header                            why
================================  ==============================================================
X-Content-Type-Options: nosniff   a browser never guesses a script out of a JSON or text body
X-Frame-Options: DENY             no page of ours inside someone else's frame (clickjacking);
                                  ``frame-ancestors 'none'`` says the same to newer browsers
Content-Security-Policy           only our own scripts, styles and images (the API docs page
                                  may also load Swagger UI from its CDN)
Referrer-Policy: no-referrer      a dispatch URL never leaks to another site
Permissions-Policy                no camera, microphone or location for any page
Cross-Origin-Opener-Policy        a page we open cannot reach back into ours
Cache-Control: no-store           (``/api/``) personal data stays out of shared caches
Strict-Transport-Security         when the public URL is https: browsers keep to https
================================  ==============================================================

A header the route set itself is left as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCS_CSP = CSP
"""The API docs are served from the collector's own files (``collector/web``): no CDN to allow."""
DOCS_PATHS = ("/docs", "/redoc")
HSTS = "max-age=31536000; includeSubDomains"

BASE_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
    ("cross-origin-opener-policy", "same-origin"),
)


def headers_for(path: str, *, hsts: bool) -> list[tuple[str, str]]:
    """The headers a response to ``path`` gets (lower-case names)."""
    headers = list(BASE_HEADERS)
    headers.append(("content-security-policy", DOCS_CSP if path.startswith(DOCS_PATHS) else CSP))
    if path.startswith("/api/"):
        headers.append(("cache-control", "no-store"))
    if hsts:
        headers.append(("strict-transport-security", HSTS))
    return headers


class SecurityHeaders:
    """``app.add_middleware(SecurityHeaders, hsts=True)``: adds :func:`headers_for` to responses."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = headers_for(str(scope.get("path", "")), hsts=self.hsts)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {name.lower() for name, _ in raw}
                for name, value in extra:
                    if name.encode() not in present:
                        raw.append((name.encode(), value.encode()))
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)
