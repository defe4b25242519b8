"""The trail a dispatch change leaves: a step in ``dispatch_steps`` and a row in ``audit_log``,
written in the caller's transaction. Both the pages and the bearer-token API call it, so no
change of a dispatch escapes the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from collector.domain import lifecycle
from collector.store.accounts import AuditEntry, DispatchStep
from collector.store.models import Dispatch, DispatchStatus

STEP_OF_EVENT: dict[type[object], str] = {
    lifecycle.Acknowledge: "acknowledged",
    lifecycle.ArriveOnSite: "on_site",
    lifecycle.Resolve: "resolved",
    lifecycle.AddNote: "note",
}
_ACTION = {"acknowledged": "acknowledge"}


def write_lifecycle(
    session: Session, dispatch_id: int, before: lifecycle.Lifecycle, after: lifecycle.Lifecycle
) -> bool:
    """Store ``after`` on the dispatch, conditional on the status still being ``before``'s.

    False when someone else moved the dispatch between the read and this write (two caregivers
    pressing "acknowledge" at once: exactly one wins).
    """
    values: dict[str, Any] = {
        "status": DispatchStatus(after.status.value),
        "acknowledged_at": after.acknowledged_at,
        "acknowledged_by": after.acknowledged_by,
        "resolved_at": after.resolved_at,
        "outcome": after.outcome.value if after.outcome else None,
        "note": after.note,
    }
    if not after.escalates:
        values["next_escalation_at"] = None
    result = cast(
        CursorResult[Any],
        session.execute(
            update(Dispatch)
            .where(
                Dispatch.id == dispatch_id, Dispatch.status == DispatchStatus(before.status.value)
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        ),
    )
    return result.rowcount == 1


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
