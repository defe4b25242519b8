"""Logging in and out, the signed links from SMS and e-mail, the language switch, ``/``."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select, update

from collector.api.deps import NowDep, SessionDep
from collector.auth.passwords import DUMMY_HASH, verify_password
from collector.domain.links import BadLink
from collector.store.accounts import Account, Role
from collector.web import audit
from collector.web.deps import FormDep, OptionalViewerDep, ViewerDep, render, viewer_of
from collector.web.i18n import LANGUAGES
from collector.web.sessions import COOKIE, LOGIN_CSRF_COOKIE, close_session, open_session

router = APIRouter(include_in_schema=False)


def _safe_next(value: str | None) -> str:
    """Only paths on this site: never an absolute URL (open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return "/"
    return value


def _home(role: Role) -> str:
    return {Role.CAREGIVER: "/care", Role.TECHNICIAN: "/tickets"}.get(role, "/map")


@router.get("/")
def home(viewer: ViewerDep) -> RedirectResponse:
    return RedirectResponse(_home(viewer.role), status_code=303)


def _login_page(
    request: Request,
    *,
    next_path: str,
    error: str | None = None,
    status_code: int = 200,
    language: str = "ko",
) -> Response:
    token = secrets.token_urlsafe(24)
    request.state.csrf = token
    notice = None
    if next_path.startswith("/care/dispatches/"):
        notice = next_path.removeprefix("/care/dispatches/").split("?")[0]
    response = render(
        request,
        "login.html",
        viewer=None,
        status_code=status_code,
        language=language if language in LANGUAGES else "ko",
        next_path=next_path,
        error=error,
        dispatch_notice=notice,
    )
    secure = request.app.state.web.cookie_secure
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure, max_age=3600
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None, lang: str = "ko") -> Response:
    """The login page; ``?lang=en`` before anyone is logged in, the account's language after."""
    return _login_page(request, next_path=_safe_next(next), language=lang)


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    now: NowDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf: Annotated[str, Form(max_length=64)],
    next: Annotated[str, Form(max_length=500)] = "/",
    lang: Annotated[str, Form(max_length=8)] = "ko",
) -> Response:
    web = request.app.state.web
    next_path = _safe_next(next)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(csrf, expected):
        return _login_page(
            request, next_path=next_path, error="login_stale", status_code=403, language=lang
        )
    client = request.client.host if request.client else "unknown"
    keys = (f"user:{username.strip().lower()}", f"addr:{client}")
    wait = web.throttle.retry_after_s(keys, now=time.monotonic())
    if wait > 0:
        response = _login_page(
            request,
            next_path=next_path,
            error=f"throttled:{int(wait) + 1}",
            status_code=429,
            language=lang,
        )
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    account = session.scalar(select(Account).where(Account.username == username.strip()))
    ok = verify_password(password, account.password_hash if account else DUMMY_HASH)
    if account is None or not ok or not account.active:
        web.throttle.failed(keys, now=time.monotonic())
        # Only a real username is written down: people type passwords into the wrong field,
        # and the audit log can never be edited.
        actor = account.username if account is not None else "(unknown username)"
        audit.record(session, None, "login_failed", now=now, actor=actor)
        return _login_page(
            request, next_path=next_path, error="login_failed", status_code=401, language=lang
        )
    web.throttle.succeeded(keys)
    token = open_session(session, account, now=now, ttl=dt.timedelta(hours=web.session_ttl_h))
    audit.record(session, viewer_of(account), "login", now=now, district=account.district)
    target = next_path if next_path != "/" else _home(account.role)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="lax",  # the link in an SMS is a top-level GET from elsewhere: keep the cookie
        secure=web.cookie_secure,
        max_age=int(web.session_ttl_h * 3600),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, form: FormDep) -> RedirectResponse:
    close_session(session, request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.post("/me/language")
def set_language(
    request: Request, session: SessionDep, viewer: ViewerDep, form: FormDep
) -> RedirectResponse:
    language = form.get("language", "")
    if language in LANGUAGES:
        session.execute(
            update(Account).where(Account.id == viewer.account_id).values(language=language)
        )
    return RedirectResponse(_safe_next(form.get("next")), status_code=303)


@router.get("/l/{token}")
def open_link(request: Request, token: str, now: NowDep, viewer: OptionalViewerDep) -> Response:
    """A signed link from an SMS or e-mail: the dispatch's page, after a login if needed."""
    try:
        dispatch_id = request.app.state.web.links.verify(token, now=now)
    except BadLink as exc:
        lang = viewer.language if viewer else "ko"
        return render(
            request, "error.html", viewer=viewer, status_code=400, language=lang,
            title_key="bad_link", message=str(exc),
        )  # fmt: skip
    target = f"/care/dispatches/{dispatch_id}"
    if viewer is None:
        return RedirectResponse(f"/login?next={target}", status_code=303)
    return RedirectResponse(target, status_code=303)


@router.get("/dispatches/{dispatch_id}")
def old_link(dispatch_id: int) -> RedirectResponse:
    """The unsigned address older messages carried: the same page, login required."""
    return RedirectResponse(f"/care/dispatches/{dispatch_id}", status_code=303)
