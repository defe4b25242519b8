"""Test SOS in the store: what the service's SOS hook and the API's test-SOS routes do.

The decisions are in :mod:`collector.domain.sos_test`; this module only reads and writes rows.
A test SOS is an ``events`` row of kind ``sos_test`` (no new table, no dispatch); a dispatch
marked as a test is one resolved with outcome ``test``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from collector.domain.lifecycle import Outcome
from collector.domain.sos_test import TEST_SOS_EVENT, mark_as_test
from collector.store.models import (
    Device,
    Dispatch,
    DispatchReason,
    DispatchStatus,
    EventRecord,
    Household,
)
from firmware_config.messages import SosAck, SosEvent


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _ack(sos_id: str, event_id: int, now: dt.datetime) -> SosAck:
    # SosAck.dispatch_id must be a positive id; a test SOS has no dispatch, so the id of its
    # stored event stands in (the device only logs it). See docs/provisioning.md, "verify".
    return SosAck(device_ts=now.timestamp(), seq=0, sos_id=sos_id, dispatch_id=event_id)


def record_test_sos(
    session: Session, device: Device, household: Household, sos: SosEvent, now: dt.datetime
) -> SosAck:
    """Store a test SOS (the caller has de-duplicated it) and return the device's ack."""
    event = EventRecord(
        message_id=sos.message_id,
        device_id=device.id,
        household_id=household.id,
        kind=TEST_SOS_EVENT,
        source=sos.source,
        phrase=sos.phrase,
        device_ts=_utc(sos.device_ts),
        received_at=now,
    )
    session.add(event)
    session.flush()
    device.last_life_sign_at = now  # someone pressed or spoke: a life sign like any other
    return _ack(sos.message_id, event.id, now)


def reack_test_sos(session: Session, sos: SosEvent, now: dt.datetime) -> SosAck | None:
    """The ack again for a redelivered test SOS (the first may have been lost), or None."""
    event_id = session.scalar(
        select(EventRecord.id).where(
            EventRecord.message_id == sos.message_id, EventRecord.kind == TEST_SOS_EVENT
        )
    )
    return None if event_id is None else _ack(sos.message_id, event_id, now)


@dataclass(frozen=True)
class TestSosRecord:
    message_id: str
    device_id: str
    household_id: str
    source: str | None
    device_ts: dt.datetime
    received_at: dt.datetime
    dispatched: bool
    """Whether any dispatch names this SOS (never, unless something is wrong)."""


def list_test_sos(
    session: Session,
    *,
    device_id: str | None = None,
    household_id: str | None = None,
    message_id: str | None = None,
    limit: int = 100,
) -> list[TestSosRecord]:
    """Test SOS events, newest first."""
    query = select(EventRecord).where(EventRecord.kind == TEST_SOS_EVENT)
    if device_id is not None:
        query = query.where(EventRecord.device_id == device_id)
    if household_id is not None:
        query = query.where(EventRecord.household_id == household_id)
    if message_id is not None:
        query = query.where(EventRecord.message_id == message_id)
    events = session.scalars(query.order_by(EventRecord.id.desc()).limit(limit)).all()
    ids = [e.message_id for e in events]
    dispatched = set(
        session.scalars(select(Dispatch.sos_message_id).where(Dispatch.sos_message_id.in_(ids)))
    )
    return [
        TestSosRecord(
            e.message_id,
            e.device_id,
            e.household_id,
            e.source,
            e.device_ts,
            e.received_at,
            e.message_id in dispatched,
        )
        for e in events
    ]


def sos_report(session: Session, *, district: str | None = None) -> dict[str, Any]:
    """SOS counted apart: real alarms, test SOS from devices, and dispatches marked as tests."""

    def events(kind: str) -> int:
        query = select(func.count()).select_from(EventRecord).where(EventRecord.kind == kind)
        if district is not None:
            query = query.join(Household, Household.id == EventRecord.household_id).where(
                Household.district == district
            )
        return int(session.scalar(query) or 0)

    def dispatches(*where: Any) -> int:
        query = (
            select(func.count())
            .select_from(Dispatch)
            .where(Dispatch.reason == DispatchReason.SOS, *where)
        )
        if district is not None:
            query = query.join(Household, Household.id == Dispatch.household_id).where(
                Household.district == district
            )
        return int(session.scalar(query) or 0)

    marked = dispatches(Dispatch.outcome == Outcome.TEST.value)
    total = dispatches()
    return {
        "district": district,
        "sos_events": events("sos"),
        "test_sos_events": events(TEST_SOS_EVENT),
        "sos_dispatches": total,
        "sos_dispatches_marked_test": marked,
        "sos_dispatches_real": total - marked,
    }


def mark_dispatch_as_test(
    session: Session,
    dispatch: Dispatch,
    lifecycle_now: Any,
    *,
    by: str | None,
    note: str | None,
    now: dt.datetime,
) -> bool:
    """Write :func:`mark_as_test` for ``dispatch`` (whose lifecycle is ``lifecycle_now``).

    Conditional on the status read, like every dispatch transition; False when someone changed
    the dispatch meanwhile (the caller reads it again and retries).
    """
    after = mark_as_test(lifecycle_now, reason=dispatch.reason.value, by=by, note=note, now=now)
    if after == lifecycle_now:
        return True
    result = session.execute(
        update(Dispatch)
        .where(Dispatch.id == dispatch.id, Dispatch.status == dispatch.status)
        .values(
            status=DispatchStatus(after.status.value),
            acknowledged_at=after.acknowledged_at,
            acknowledged_by=after.acknowledged_by,
            resolved_at=after.resolved_at,
            outcome=None if after.outcome is None else after.outcome.value,
            note=after.note,
            next_escalation_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
