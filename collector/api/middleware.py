"""One structured log line per request, as plain ASGI middleware.

Method, path, status and duration; no query string and no headers, so tokens and names stay out
of the logs. Plain ASGI rather than ``@app.middleware("http")``, which wraps every request in an
extra task and memory stream and cost more than the dispatch list query itself.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("collector.http")


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        # A signed message link is a credential of sorts: keep it out of the logs.
                        "path": "/l/…" if scope["path"].startswith("/l/") else scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
