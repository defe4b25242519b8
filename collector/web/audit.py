"""The audit log: one row per view of a resident's record and per change of a dispatch.

Rows are only ever added (the database refuses UPDATE and DELETE, see ``store/accounts.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.store.accounts import AuditEntry
from collector.web.access import Viewer


def record(
    session: Session,
    viewer: Viewer | None,
    action: str,
    *,
    now: dt.datetime,
    district: str | None = None,
    household_id: str | None = None,
    dispatch_id: int | None = None,
    detail: str | None = None,
    actor: str | None = None,
) -> None:
    session.add(
        AuditEntry(
            at=now,
            account_id=None if viewer is None else viewer.account_id,
            actor=actor or (viewer.username if viewer is not None else "anonymous"),
            action=action,
            district=district,
            household_id=household_id,
            dispatch_id=dispatch_id,
            detail=detail,
        )
    )


def entries(
    session: Session, *, district: str | None, household_id: str | None, limit: int = 200
) -> Sequence[AuditEntry]:
    """Newest first; ``district=None`` means every district (admins)."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if district is not None:
        query = query.where(AuditEntry.district == district)
    if household_id is not None:
        query = query.where(AuditEntry.household_id == household_id)
    return session.scalars(query).all()
