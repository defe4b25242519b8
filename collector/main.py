"""The collector's HTTP app: ``/health`` for load balancers, ``/api/v1`` for welfare-office staff.

    app = create_app(Collector(settings), settings=settings)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port)

The app's lifespan starts and stops the runtime (MQTT ingest, notification worker, escalation
scheduler), so whatever serves the app also runs the collector. Interactive docs: ``/docs``; pages
for caregivers and staff: ``/login`` (see ``collector/web``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response, status
from fastapi.responses import JSONResponse

from collector.api.crud import Conflict, NotFound
from collector.api.deps import Runtime
from collector.api.routes import api_router
from collector.domain.lifecycle import InvalidTransition
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
    app.state.api_token = settings.api_token

    @app.get("/health", tags=["health"])
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

    app.include_router(api_router)
    install_web(app, settings)
    _add_error_handlers(app)
    app.middleware("http")(_log_request)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    def handler(code: int) -> Callable[[Request, Exception], Response]:
        def respond(_request: Request, exc: Exception) -> Response:
            return JSONResponse({"detail": str(exc)}, status_code=code)

        return respond

    app.add_exception_handler(NotFound, handler(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(Conflict, handler(status.HTTP_409_CONFLICT))
    app.add_exception_handler(InvalidTransition, handler(status.HTTP_409_CONFLICT))


async def _log_request(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """One structured log line per request: method, path, status and duration (no query string,
    no headers: tokens and names stay out of the logs)."""
    started = time.perf_counter()
    response = await call_next(request)
    log.info(
        "request",
        extra={
            "method": request.method,
            # A signed message link is a credential of sorts: keep it out of the logs.
            "path": "/l/…" if request.url.path.startswith("/l/") else request.url.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return response
