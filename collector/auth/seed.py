"""Accounts for a seeded district (``anbu demo``): one caregiver, the supervisor, a technician.

The caregiver account is tied to the district's first caregiver, so the pages show that
caregiver's households and dispatches.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from collector.auth.accounts import create_account
from collector.auth.passwords import hash_password
from collector.store.accounts import Account, Role
from collector.store.db import Database
from collector.store.models import Caregiver


@dataclass(frozen=True, slots=True)
class SeededLogin:
    username: str
    password: str
    role: Role
    page: str
    """The path the account starts on."""
    caregiver_id: int | None = None


def seed_accounts(
    db: Database, district: str, *, password: str, now: dt.datetime
) -> list[SeededLogin]:
    """``caregiver``, ``supervisor`` and ``technician`` for ``district``; existing ones are kept
    (their password is not changed)."""
    logins: list[SeededLogin] = []
    digest = hash_password(password)
    with db.session() as s:
        first = s.scalar(
            select(Caregiver).where(Caregiver.district == district).order_by(Caregiver.id)
        )
        wanted = [
            ("caregiver", Role.CAREGIVER, first.name if first else "caregiver", "/care"),
            ("supervisor", Role.SUPERVISOR, f"{district} 복지팀장", "/map"),
            ("technician", Role.TECHNICIAN, "설치 기사", "/docs"),
        ]
        for username, role, name, page in wanted:
            if role is Role.CAREGIVER and first is None:
                continue
            caregiver_id = first.id if role is Role.CAREGIVER and first else None
            if s.scalar(select(Account.id).where(Account.username == username)) is None:
                create_account(
                    s,
                    username=username,
                    password=password,
                    password_hash=digest,
                    role=role,
                    display_name=name,
                    district=district if role is not Role.TECHNICIAN else None,
                    caregiver_id=caregiver_id,
                    now=now,
                )
            logins.append(SeededLogin(username, password, role, page, caregiver_id))
    return logins
