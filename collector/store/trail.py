"""The trail a dispatch change leaves: a step in ``dispatch_steps`` and a row in ``audit_log``,
written in the caller's transaction. Both the pages and the bearer-token API call it, so no
change of a dispatch escapes the audit log."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from collector.domain import lifecycle
from collector.store.accounts import AuditEntry, DispatchStep

STEP_OF_EVENT: dict[type[object], str] = {
    lifecycle.Acknowledge: "acknowledged",
    lifecycle.ArriveOnSite: "on_site",
    lifecycle.Resolve: "resolved",
    lifecycle.AddNote: "note",
}
_ACTION = {"acknowledged": "acknowledge"}


def record_change(
    session: Session,
    *,
    dispatch_id: int,
    household_id: str,
    district: str,
    event: lifecycle.Event,
    by: str,
    actor: str,
    account_id: int | None,
    now: dt.datetime,
) -> None:
    """``by`` is the person's name shown on the timeline; ``actor`` the account (or
    ``api-token``) written to the audit log."""
    step = STEP_OF_EVENT[type(event)]
    outcome = event.outcome.value if isinstance(event, lifecycle.Resolve) else None
    note = event.note if isinstance(event, lifecycle.Resolve | lifecycle.AddNote) else None
    session.add(
        DispatchStep(
            dispatch_id=dispatch_id,
            step=step,
            at=now,
            account_id=account_id,
            by=by[:100],
            outcome=outcome,
            note=(note or "").strip() or None,
        )
    )
    session.add(
        AuditEntry(
            at=now,
            account_id=account_id,
            actor=actor[:100],
            action=_ACTION.get(step, step),
            district=district,
            household_id=household_id,
            dispatch_id=dispatch_id,
            detail=outcome,
        )
    )
