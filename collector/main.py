"""The collector's HTTP app: ``/health`` for load balancers, ``/api/v1`` for welfare-office staff.

    app = create_app(Collector(settings), settings=settings)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port)

The app's lifespan starts and stops the runtime (MQTT ingest, notification worker, escalation
scheduler), so whatever serves the app also runs the collector. Interactive docs: ``/docs``; pages
for caregivers and staff: ``/login`` (see ``collector/web``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, status
from fastapi.responses import JSONResponse, PlainTextResponse

from collector.api.cache import PageCache
from collector.api.deps import Runtime, SessionSlots
from collector.api.errors import add_error_handlers
from collector.api.middleware import RequestLog
from collector.api.routes import api_router
from collector.notify.metrics import render_metrics
from collector.security_headers import SecurityHeaders
from collector.settings import CollectorSettings
from collector.web import install_web

log = logging.getLogger("collector.http")

DESCRIPTION = """\
Households, caregivers, devices and dispatches of the Anbu collector.

Every `/api/v1` call needs `Authorization: Bearer <ANBU_API_TOKEN>`. Lists take `limit` (1-500)
and `offset` and return `{"data": [...], "count": N, "limit": L, "offset": O}`.
"""


def create_app(runtime: Runtime, *, settings: CollectorSettings | None = None) -> FastAPI:
    """The FastAPI app over ``runtime``; its lifespan calls ``runtime.start()`` and ``stop()``.

    ``settings`` gives the API token; without it ``runtime.settings`` is used.
    """
    if settings is None:
        settings = getattr(runtime, "settings", None)
    if not isinstance(settings, CollectorSettings):
        raise TypeError("create_app needs settings= or a runtime with a .settings attribute")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(
        title="Anbu collector",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs and /openapi.json are served by collector.web: Swagger UI from a wheel (no CDN),
        # both behind a staff login in production.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = runtime
    # the silence schedule that POST /households/{id}/life-signs feeds (absent: 503)
    app.state.silence = getattr(runtime, "silence", None)
    app.state.api_token = settings.api_token
    app.state.session_slots = SessionSlots(settings.api_db_sessions, settings.api_db_wait_s)
    app.state.page_cache = PageCache(settings.api_list_cache_s, changes=runtime.db.changes)

    @app.get(
        "/health",
        tags=["health"],
        responses={503: {"description": "Degraded: the body says which part is unwell"}},
    )
    def health() -> JSONResponse:
        """200 with the runtime's health when all is well, 503 when degraded. No token needed."""
        try:
            report: dict[str, Any] = runtime.health()
        except Exception as exc:  # a health check must answer, not raise
            log.exception("health check failed")
            report = {"status": "degraded", "error": f"{type(exc).__name__}: {exc}"}
        ok = report.get("status") == "ok"
        code = status.HTTP_200_OK if ok else status.HTTP_503_SERVICE_UNAVAILABLE
        return JSONResponse(report, status_code=code)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus text: notification delivery by channel, oldest undelivered age. No token."""
        try:
            report: dict[str, Any] = runtime.health()
        except Exception as exc:
            log.exception("metrics failed")
            report = {"status": "degraded", "error": f"{type(exc).__name__}: {exc}"}
        return PlainTextResponse(render_metrics(report), media_type="text/plain; version=0.0.4")

    app.include_router(api_router)
    # Texts to the district's number: their own token, outside /api/v1 (docs/sms-gateway.md).
    from collector.api.routes import sms_inbound
    from collector.service import escalation_policy, link_signer

    service = getattr(runtime, "service", None)
    app.state.escalation_policy = getattr(service, "escalation_policy", None) or (
        escalation_policy(settings, None)
    )
    app.state.request_links = getattr(service, "links", None) or link_signer(settings)
    app.state.sms_inbound_token = settings.sms_inbound_token
    app.state.sms_district_numbers = {
        sms_inbound._digits(k): v for k, v in settings.sms_district_numbers.items()
    }
    app.include_router(sms_inbound.router)
    install_web(app, settings)
    add_error_handlers(app)
    app.add_middleware(RequestLog)
    # outermost, so that error responses and 404s get the headers too
    app.add_middleware(SecurityHeaders, hsts=settings.public_url.startswith("https://"))
    return app
