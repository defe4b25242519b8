"""``/docs`` without the internet: Swagger UI's files come from the ``swagger-ui-bundle`` wheel
and are served by the collector; in production the page needs a login."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from collector.web.access import Viewer, check, may_read_docs
from collector.web.deps import LoginRequired, OptionalViewerDep, render

router = APIRouter(include_in_schema=False)


def _allowed(request: Request, viewer: Viewer | None, path: str) -> None:
    if request.app.state.web.docs_need_login:
        if viewer is None:
            raise LoginRequired(path)
        check(may_read_docs(viewer), "the API docs are for staff and technicians")


@router.get("/docs")
def docs(request: Request, viewer: OptionalViewerDep) -> Response:
    _allowed(request, viewer, "/docs")
    return render(request, "docs.html", viewer=viewer)


@router.get("/openapi.json")
def openapi(request: Request, viewer: OptionalViewerDep) -> JSONResponse:
    _allowed(request, viewer, "/docs")
    return JSONResponse(request.app.openapi())
