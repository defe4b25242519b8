"""What the page routes get injected: the logged-in viewer, the CSRF check, the templates."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from collector.api.deps import NowDep, SessionDep
from collector.store.accounts import Account
from collector.web.access import Viewer
from collector.web.i18n import translate
from collector.web.sessions import COOKIE, find_session

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


class LoginRequired(Exception):
    """No live session: the page answers with a redirect to ``/login?next=...``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfFailed(Exception):
    """A form arrived without this session's CSRF token (403)."""


def viewer_of(account: Account) -> Viewer:
    return Viewer(
        account.id,
        account.username,
        account.display_name,
        account.role,
        account.district,
        account.caregiver_id,
        account.language,
    )


def optional_viewer(request: Request, session: SessionDep, now: NowDep) -> Viewer | None:
    found = find_session(session, request.cookies.get(COOKIE), now=now)
    if found is None:
        return None
    web_session, account = found
    request.state.csrf = web_session.csrf_token
    return viewer_of(account)


OptionalViewerDep = Annotated[Viewer | None, Depends(optional_viewer)]


async def require_viewer(request: Request, viewer: OptionalViewerDep) -> Viewer:
    # async: no I/O here, so FastAPI runs it on the event loop instead of sending it through
    # the thread pool (each hop there is one more place a loaded machine can stall a request).
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return viewer


ViewerDep = Annotated[Viewer, Depends(require_viewer)]


async def checked_form(request: Request, viewer: ViewerDep) -> dict[str, str]:
    """The posted form, after checking its ``csrf`` field against the session's token."""
    form = await request.form()
    sent = form.get("csrf")
    expected = getattr(request.state, "csrf", "")
    if not isinstance(sent, str) or not secrets.compare_digest(sent, expected):
        raise CsrfFailed("the form is stale or was not sent from this site: reload and try again")
    return {k: v for k, v in form.items() if isinstance(v, str)}


FormDep = Annotated[dict[str, str], Depends(checked_form)]


def render(
    request: Request,
    name: str,
    *,
    viewer: Viewer | None,
    status_code: int = 200,
    language: str | None = None,
    **context: Any,
) -> HTMLResponse:
    lang = language or (viewer.language if viewer else "ko")

    def t(key: str, **values: object) -> str:
        return translate(lang, key, **values)

    context.update(
        viewer=viewer,
        lang=lang,
        t=t,
        csrf=getattr(request.state, "csrf", ""),
        kst=_kst,
        quote=quote,
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _kst(ts: dt.datetime | None) -> str:
    if ts is None:
        return ""
    return ts.astimezone(dt.timezone(dt.timedelta(hours=9))).strftime("%Y-%m-%d %H:%M")
