"""Wiring the pages into the FastAPI app: routes, static files, error pages, security headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.auth.throttle import LoginThrottle
from collector.domain.links import LinkSigner
from collector.requests import AlreadyHandled
from collector.settings import CollectorSettings
from collector.web.access import Forbidden
from collector.web.deps import HERE, CsrfFailed, LoginRequired, optional_viewer, render
from collector.web.records import BadForm, Missing
from collector.web.routes import care, docs, login, office, reports, supervise, tickets
from collector.web.snapshots import SnapshotCache


@dataclass
class WebConfig:
    """What the page routes read from ``app.state.web``."""

    links: LinkSigner
    throttle: LoginThrottle
    session_ttl_h: float
    cookie_secure: bool
    docs_need_login: bool
    tile_url: str | None
    tile_attribution: str
    map_poll_s: float = 1.0
    map_cache: SnapshotCache | None = None
    """Made on first use, over the runtime's database (see ``routes/supervise.py``)."""


def install_web(app: FastAPI, settings: CollectorSettings) -> None:
    """Add the pages to ``app``. The app must be made with ``docs_url=None, redoc_url=None``."""
    from collector.service import link_signer

    app.state.web = WebConfig(
        links=link_signer(settings),
        throttle=LoginThrottle(settings.login_max_failures, settings.login_window_s),
        session_ttl_h=settings.session_ttl_h,
        cookie_secure=urlsplit(settings.public_url).scheme == "https",
        docs_need_login=settings.environment == "production",
        tile_url=settings.map_tile_url,
        tile_attribution=settings.map_tile_attribution,
    )
    routers = (
        login.router,
        care.router,
        supervise.router,
        reports.router,
        tickets.router,
        office.router,
    )
    for router in (*routers, docs.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.mount(
        "/docs/assets",
        StaticFiles(directory=Path(swagger_ui_bundle.swagger_ui_path)),
        name="swagger-ui",
    )
    _error_pages(app)
    app.add_middleware(PageHeaders, csp=_content_security_policy(settings.map_tile_url))


def _error_pages(app: FastAPI) -> None:
    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)  # noqa: S101
        return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", status_code=303)

    def page(code: int, title_key: str) -> Callable[[Request, Exception], Awaitable[Response]]:
        async def respond(request: Request, exc: Exception) -> Response:
            if request.url.path.startswith("/api/"):
                from fastapi.responses import JSONResponse

                return JSONResponse({"detail": str(exc)}, status_code=code)
            viewer = None
            if request.cookies:
                with request.app.state.runtime.db.session() as session:
                    from collector.api.deps import wall_clock

                    viewer = optional_viewer(request, session, wall_clock())
            return render(
                request, "error.html", viewer=viewer, status_code=code,
                title_key=title_key, message=str(exc),
            )  # fmt: skip

        return respond

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Forbidden, page(403, "forbidden"))
    app.add_exception_handler(CsrfFailed, page(403, "forbidden"))
    app.add_exception_handler(Missing, page(404, "not_found"))
    app.add_exception_handler(BadForm, page(400, "bad_form"))
    app.add_exception_handler(AlreadyHandled, page(409, "already_handled"))


def _content_security_policy(tile_url: str | None) -> str:
    images = "'self' data:"
    if tile_url:
        parts = urlsplit(tile_url.replace("{s}", "a"))
        host = parts.netloc.replace("a.", "*.", 1) if "{s}" in tile_url else parts.netloc
        images += f" {parts.scheme}://{host}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; font-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


class PageHeaders:
    """The pages' security headers, as plain ASGI middleware: one pass over the response headers.

    Every response gets ``nosniff``, ``DENY``, ``no-referrer`` and the permissions policy; HTML
    also gets the pages' content security policy and ``no-store``; https adds HSTS. A header the
    route set itself is kept. (``@app.middleware("http")`` would put every request, API calls
    included, through an extra task and memory stream.)
    """

    def __init__(self, app: ASGIApp, *, csp: str) -> None:
        self.app = app
        self.csp = csp
        # Swagger UI sets inline styles; only its page gets 'unsafe-inline' for styles.
        self.docs_csp = csp.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {name.lower(): value for name, value in raw}
                extra = list(_PAGE_HEADERS)
                if present.get(b"content-type", b"").startswith(b"text/html"):
                    csp = self.docs_csp if scope["path"] == "/docs" else self.csp
                    extra += [(b"content-security-policy", csp.encode()), _NO_STORE]
                if scope.get("scheme") == "https":
                    extra.append(_HSTS)
                raw += [(name, value) for name, value in extra if name not in present]
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)


_PAGE_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # The signed link is in the path: never send it on to another site.
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
_NO_STORE = (b"cache-control", b"no-store")
_HSTS = (b"strict-transport-security", b"max-age=31536000")
