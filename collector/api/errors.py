"""How failures become HTTP: 404, 409, 422 for a bad cursor, 503 with Retry-After for the database.

A database that is unreachable, locked or out of connections is the collector's trouble, not the
caller's: it answers 503 with ``Retry-After`` (and logs the cause) instead of a bare 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from fastapi import FastAPI, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from collector.api.crud import Conflict, NotFound
from collector.api.cursor import BadCursor
from collector.api.deps import RETRY_AFTER_S
from collector.domain.lifecycle import InvalidTransition

log = logging.getLogger("collector.http")


def add_error_handlers(app: FastAPI) -> None:
    def handler(code: int) -> Callable[[Request, Exception], Response]:
        def respond(_request: Request, exc: Exception) -> Response:
            return JSONResponse({"detail": str(exc)}, status_code=code)

        return respond

    app.add_exception_handler(NotFound, handler(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(Conflict, handler(status.HTTP_409_CONFLICT))
    app.add_exception_handler(InvalidTransition, handler(status.HTTP_409_CONFLICT))
    app.add_exception_handler(BadCursor, _bad_cursor)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(StarletteHTTPException, _method_not_allowed)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    """A 405's ``Allow`` names every method the path has, not only those of the first route the
    router tried (``GET /households`` and ``POST /households`` are two routes)."""
    if not isinstance(exc, StarletteHTTPException):  # registered for that type only
        raise exc
    if exc.status_code != status.HTTP_405_METHOD_NOT_ALLOWED:
        return await http_exception_handler(request, exc)
    allowed = _allowed_methods(request.app).get_for(request.url.path)
    headers = {"Allow": ", ".join(allowed)} if allowed else dict(exc.headers or {})
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


class _Methods:
    """Path templates of the app's OpenAPI schema, as patterns, with their methods."""

    def __init__(self, paths: dict[str, dict[str, object]]) -> None:
        self.table = [
            (
                re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "$"),
                sorted(method.upper() for method in operations),
            )
            for path, operations in paths.items()
        ]

    def get_for(self, path: str) -> list[str]:
        methods: set[str] = set()
        for pattern, allowed in self.table:
            if pattern.match(path):
                methods.update(allowed)
        return sorted(methods)


def _allowed_methods(app: FastAPI) -> _Methods:
    methods: _Methods | None = getattr(app.state, "allowed_methods", None)
    if methods is None:
        methods = app.state.allowed_methods = _Methods(app.openapi().get("paths", {}))
    return methods


def _bad_cursor(_request: Request, exc: Exception) -> Response:
    detail = [{"loc": ["query", "cursor"], "msg": str(exc), "type": "value_error"}]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _database_unavailable(request: Request, exc: Exception) -> Response:
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    log.warning(
        "database unavailable",
        extra={"path": request.url.path, "error": f"{type(cause).__name__}: {cause}"[:300]},
    )
    return JSONResponse(
        {"detail": "the database is unavailable or busy; try again shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
