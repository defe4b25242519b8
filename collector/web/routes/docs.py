"""``/docs`` without the internet: Swagger UI's files come from the ``swagger-ui-bundle`` wheel
and are served by the collector; in production the page needs a login."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from collector.web.access import check, may_read_docs
from collector.web.deps import LoginRequired, OptionalViewerDep, render

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs(request: Request, viewer: OptionalViewerDep) -> Response:
    if request.app.state.web.docs_need_login:
        if viewer is None:
            raise LoginRequired("/docs")
        check(may_read_docs(viewer), "the API docs are for staff and technicians")
    return render(request, "docs.html", viewer=viewer)
