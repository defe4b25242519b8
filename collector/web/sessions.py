"""Server-side sessions: the cookie carries a random token, the store keeps its SHA-256, the
account and the session's CSRF token. Logging out deletes the row, so a stolen cookie dies too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from collector.store.accounts import Account, WebSession

COOKIE = "anbu_session"
LOGIN_CSRF_COOKIE = "anbu_login_csrf"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, account: Account, *, now: dt.datetime, ttl: dt.timedelta) -> str:
    """A new session for ``account``; returns the cookie value. Expired rows are swept here."""
    session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=_digest(token),
            account_id=account.id,
            csrf_token=secrets.token_urlsafe(24),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return token


def find_session(
    session: Session, token: str | None, *, now: dt.datetime
) -> tuple[WebSession, Account] | None:
    """The live session and its active account behind a cookie value, or None."""
    if not token or len(token) > 128:
        return None
    row = session.execute(
        select(WebSession, Account)
        .join(Account, Account.id == WebSession.account_id)
        .where(WebSession.token_hash == _digest(token), WebSession.expires_at > now)
    ).first()
    if row is None or not row[1].active:
        return None
    return row[0], row[1]


def close_session(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(WebSession).where(WebSession.token_hash == _digest(token)))
