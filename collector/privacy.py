"""A resident's data on request: export everything stored about one household, or delete it.

Both are recorded in the audit log (``collector/store/audit.py``) with the household id, who asked,
why, and row counts, never the data itself. Deletion removes the household (name, address,
coordinates, guardian), its devices, their heartbeats and events, its dispatches and their
notifications (which hold recipients and message texts). It is refused while a dispatch of the
household is open: an alarm in progress is not erased. Caregivers are staff, not the resident's
data, and stay. A deleted household's devices should also be taken out of the broker's rules
(re-run the mosquitto role without them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, inspect, select
from sqlalchemy.orm import Session

from collector.api.crud import Conflict, NotFound
from collector.store.accounts import AuditEntry, DispatchStep, HouseholdNote
from collector.store.audit import AuditRecord
from collector.store.models import (
    Base,
    Device,
    DeviceDay,
    Dispatch,
    DispatchStatus,
    EventRecord,
    HeartbeatRecord,
    Household,
    Notification,
)


def _row(obj: Base) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in inspect(obj).mapper.column_attrs:
        value = getattr(obj, attr.key)
        if isinstance(value, dt.datetime):
            value = value.isoformat()
        elif isinstance(value, bytes):
            value = value.hex()
        elif hasattr(value, "value"):  # enums
            value = value.value
        out[attr.key] = value
    return out


def _household(session: Session, household_id: str) -> Household:
    household = session.get(Household, household_id)
    if household is None:
        raise NotFound(f"household {household_id!r} not found")
    return household


def export_household(
    session: Session, household_id: str, *, now: dt.datetime, actor: str, reason: str = ""
) -> dict[str, Any]:
    """Everything stored about ``household_id``, as JSON-ready data; recorded in the audit log."""
    household = _household(session, household_id)
    device_ids = [d.id for d in household.devices]
    dispatches = session.scalars(
        select(Dispatch).where(Dispatch.household_id == household_id).order_by(Dispatch.id)
    ).all()
    dispatch_ids = [d.id for d in dispatches]
    notifications = session.scalars(
        select(Notification)
        .where(Notification.dispatch_id.in_(dispatch_ids))
        .order_by(Notification.id)
    ).all()
    events = session.scalars(
        select(EventRecord).where(EventRecord.household_id == household_id).order_by(EventRecord.id)
    ).all()
    heartbeats = session.scalars(
        select(HeartbeatRecord)
        .where(HeartbeatRecord.device_id.in_(device_ids))
        .order_by(HeartbeatRecord.id)
    ).all()
    days = session.scalars(
        select(DeviceDay)
        .where(DeviceDay.device_id.in_(device_ids))
        .order_by(DeviceDay.device_id, DeviceDay.day)
    ).all()
    steps = session.scalars(
        select(DispatchStep)
        .where(DispatchStep.dispatch_id.in_(dispatch_ids))
        .order_by(DispatchStep.id)
    ).all()
    notes = session.scalars(
        select(HouseholdNote)
        .where(HouseholdNote.household_id == household_id)
        .order_by(HouseholdNote.id)
    ).all()
    data = {
        "household": _row(household),
        "devices": [_row(d) for d in household.devices],
        "events": [_row(e) for e in events],
        "heartbeats": [_row(h) for h in heartbeats],
        "device_days": [_row(d) for d in days],
        "dispatch_steps": [_row(st) for st in steps],
        "household_notes": [_row(n) for n in notes],
        "dispatches": [_row(d) for d in dispatches],
        "notifications": [_row(n) for n in notifications],
    }
    counts = {key: len(value) for key, value in data.items() if isinstance(value, list)}
    _record(session, "export", household_id, now=now, actor=actor, reason=reason, counts=counts)
    return {"exported_at": now.isoformat(), **data}


def delete_household(
    session: Session, household_id: str, *, now: dt.datetime, actor: str, reason: str = ""
) -> dict[str, int]:
    """Delete everything stored about ``household_id``; rows per table (in the audit log too)."""
    household = _household(session, household_id)
    open_count = session.scalar(
        select(func.count())
        .select_from(Dispatch)
        .where(Dispatch.household_id == household_id, Dispatch.status == DispatchStatus.OPEN)
    )
    if open_count:
        raise Conflict(
            f"household {household_id!r} has an open dispatch: resolve it before deleting"
        )
    device_ids = [d.id for d in household.devices]
    dispatch_ids = select(Dispatch.id).where(Dispatch.household_id == household_id)
    counts: dict[str, int] = {}
    for name, statement in (
        ("notifications", delete(Notification).where(Notification.dispatch_id.in_(dispatch_ids))),
        ("dispatch_steps", delete(DispatchStep).where(DispatchStep.dispatch_id.in_(dispatch_ids))),
        # events point at their dispatch: they go first
        ("events", delete(EventRecord).where(EventRecord.household_id == household_id)),
        ("dispatches", delete(Dispatch).where(Dispatch.household_id == household_id)),
        ("heartbeats", delete(HeartbeatRecord).where(HeartbeatRecord.device_id.in_(device_ids))),
        ("device_days", delete(DeviceDay).where(DeviceDay.device_id.in_(device_ids))),
        (
            "household_notes",
            delete(HouseholdNote).where(HouseholdNote.household_id == household_id),
        ),
        ("devices", delete(Device).where(Device.household_id == household_id)),
    ):
        result = session.execute(statement.execution_options(synchronize_session=False))
        counts[name] = int(getattr(result, "rowcount", 0) or 0)
    session.expunge(household)
    session.execute(delete(Household).where(Household.id == household_id))
    counts["households"] = 1
    _record(session, "delete", household_id, now=now, actor=actor, reason=reason, counts=counts)
    return counts


def _record(
    session: Session,
    action: str,
    household_id: str,
    *,
    now: dt.datetime,
    actor: str,
    reason: str,
    counts: dict[str, int],
) -> None:
    session.add(
        AuditRecord(
            at=now,
            action=action,
            household_id=household_id,
            actor=actor[:100],
            reason=reason[:300],
            details={"rows": counts},
        )
    )
    session.add(
        AuditEntry(
            at=now,
            actor=actor[:100],
            action=f"data_{action}"[:32],
            household_id=household_id,
            detail=reason[:300],
        )
    )
    session.flush()
