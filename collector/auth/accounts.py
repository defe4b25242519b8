"""Making accounts for people: one function, used by the demo's seed and by tests."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.auth.passwords import hash_password
from collector.store.accounts import Account, Role
from collector.store.models import Caregiver


class AccountError(ValueError):
    """The account cannot be made as asked; the message names the field."""


def create_account(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role,
    display_name: str,
    now: dt.datetime,
    district: str | None = None,
    caregiver_id: int | None = None,
    language: str = "ko",
    password_hash: str | None = None,
) -> Account:
    """A new active account; ``password_hash`` (from :func:`hash_password`) skips hashing again
    when many accounts are made with one password, as the demo and the tests do."""
    username = username.strip()
    if not username or len(username) > 64:
        raise AccountError("username must be 1-64 characters")
    if session.scalar(select(Account.id).where(Account.username == username)) is not None:
        raise AccountError(f"username {username!r} is taken")
    if role in (Role.SUPERVISOR, Role.CAREGIVER) and not district:
        raise AccountError(f"a {role} account needs a district")
    if role is Role.CAREGIVER:
        caregiver = session.get(Caregiver, caregiver_id) if caregiver_id is not None else None
        if caregiver is None:
            raise AccountError("a caregiver account needs caregiver_id of a stored caregiver")
        if caregiver.district != district:
            raise AccountError(
                f"caregiver {caregiver_id} works in {caregiver.district!r}, not {district!r}"
            )
    account = Account(
        username=username,
        display_name=display_name.strip() or username,
        password_hash=password_hash or hash_password(password),
        role=role,
        district=district,
        caregiver_id=caregiver_id if role is Role.CAREGIVER else None,
        language=language if language in ("ko", "en") else "ko",
        active=True,
        created_at=now,
    )
    session.add(account)
    session.flush()
    return account
