"""One home, one open dispatch for the same trouble: a silent home whose device is offline gets
one dispatch, not a silence one and a device-offline one; an SOS still opens its own. SQLite and
PostgreSQL through the real adapters, and two collectors racing on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select

from collector.domain.dispatch import Contact, DispatchPolicy, Message
from collector.domain.escalation import EscalationPolicy
from collector.offline_dispatch import LostRace, StoreOfflineDispatches
from collector.service import Service
from collector.silence_flow import StoreDispatches
from collector.store.accounts import AuditEntry, DispatchStep
from collector.store.db import Database
from collector.store.models import Device, Dispatch, DispatchReason, DispatchStatus, Notification
from collector.store.silence import SilenceFlagRow, TechnicianTicket
from firmware_config.messages import SosEvent
from firmware_config.topics import Channel, DeviceAddress
from tests.collector.helpers import DISTRICT, NOW, raise_silence_flag, register_homes

ADDR = DeviceAddress(DISTRICT, "h-1", "dev-1")
STAFF = Contact("staff", "동주민센터", None, "staff@example.org")
SILENT_AT = NOW + dt.timedelta(hours=48)
PAGE = (Message("sms", "caregiver", "010-1111-2222", "silence", "무활동", "확인해 주세요"),)


def offline_home(db: Database) -> None:
    register_homes(db, ("dev-1",))
    with db.session() as s:
        device = s.get(Device, "dev-1")
        assert device is not None
        device.online = False
        s.add(
            TechnicianTicket(
                device_id="dev-1", household_id="h-1", kind="offline", detail="", opened_at=NOW
            )
        )


def open_offline(db: Database, at: dt.datetime) -> int | None:
    with db.session() as s:
        return StoreOfflineDispatches(staff=STAFF).open_for(s, "h-1", NOW, at)


def flag_silence(db: Database) -> SilenceFlagRow:
    """The home's 48 h pass with nothing heard; its device is offline, so no check-in."""
    return raise_silence_flag(db, at=SILENT_AT)


def dispatches(db: Database) -> list[Dispatch]:
    with db.session() as s:
        rows = s.scalars(select(Dispatch).order_by(Dispatch.id)).all()
        s.expunge_all()
        return list(rows)


def purposes(db: Database, dispatch_id: int) -> list[str]:
    with db.session() as s:
        return sorted(
            set(
                s.scalars(
                    select(Notification.purpose).where(Notification.dispatch_id == dispatch_id)
                )
            )
        )


def steps(db: Database, dispatch_id: int) -> list[tuple[str, str, str | None]]:
    with db.session() as s:
        rows = s.scalars(
            select(DispatchStep)
            .where(DispatchStep.dispatch_id == dispatch_id)
            .order_by(DispatchStep.id)
        )
        return [(r.step, r.by, r.note) for r in rows]


def device_back(db: Database, at: dt.datetime) -> bool:
    with db.session() as s:
        ticket = s.scalars(select(TechnicianTicket)).one()
        ticket.closed_at = at
        return StoreOfflineDispatches(staff=STAFF).device_back(s, ticket, at)


def test_silence_of_a_home_dispatched_as_offline_is_a_note_on_that_dispatch(
    database: Database,
) -> None:
    offline_home(database)
    offline_id = open_offline(database, NOW + dt.timedelta(hours=4))
    assert offline_id is not None
    [before] = dispatches(database)
    row = flag_silence(database)
    # No second dispatch and no second page: the flag points at the offline dispatch.
    [after] = dispatches(database)
    assert (row.status, row.dispatch_id) == ("dispatched", offline_id)
    assert purposes(database, offline_id) == ["device_offline"]
    # Its escalation goes on as it was; the note says why, on the timeline and in the audit log.
    assert (after.status, after.escalation_level) == (DispatchStatus.OPEN, 0)
    assert after.next_escalation_at == before.next_escalation_at
    assert after.note is not None and after.note.startswith("무활동 감지: 마지막 생활 신호")
    [(step, by, note)] = steps(database, offline_id)
    assert (step, by, note) == ("note", "anbu", after.note)
    with database.session() as s:
        audit = s.scalars(select(AuditEntry).where(AuditEntry.dispatch_id == offline_id)).all()
        assert [(e.actor, e.action) for e in audit] == [("anbu", "note")]
    # The device comes back: the resident was silent too, so a person closes it, not anbu.
    assert device_back(database, SILENT_AT + dt.timedelta(hours=1)) is True
    [back] = dispatches(database)
    assert back.status is DispatchStatus.OPEN and back.next_escalation_at is not None
    assert back.note is not None and "기기 다시 연결됨" in back.note
    assert purposes(database, offline_id) == ["device_back", "device_offline"]


def test_an_outage_of_a_home_dispatched_as_silent_is_a_note_on_that_dispatch(
    database: Database,
) -> None:
    offline_home(database)
    row = flag_silence(database)
    [silence] = dispatches(database)
    assert silence.reason is DispatchReason.SILENCE and row.dispatch_id == silence.id
    assert open_offline(database, SILENT_AT + dt.timedelta(hours=4)) is None
    [after] = dispatches(database)
    assert after.id == silence.id and after.next_escalation_at == silence.next_escalation_at
    assert purposes(database, silence.id) == ["silence"]  # the caregiver was paged once
    with database.session() as s:
        ticket = s.scalars(select(TechnicianTicket)).one()
        assert ticket.dispatch_id == silence.id  # this outage is dispatched: not again
    assert [(st, by) for st, by, _ in steps(database, silence.id)] == [("note", "anbu")]
    assert after.note is not None and after.note.startswith("기기 연결 끊김")
    assert open_offline(database, SILENT_AT + dt.timedelta(hours=5)) is None
    assert len(dispatches(database)) == 1
    # The device comes back: a note; nobody was told of the outage, so nobody is told of this.
    assert device_back(database, SILENT_AT + dt.timedelta(hours=6)) is False
    [back] = dispatches(database)
    assert back.status is DispatchStatus.OPEN and "기기 다시 연결됨" in (back.note or "")
    assert purposes(database, silence.id) == ["silence"]


def test_an_sos_while_the_home_is_dispatched_as_silent_opens_its_own_urgent_dispatch(
    database: Database,
) -> None:
    offline_home(database)
    flag_silence(database)
    svc = Service(database, DispatchPolicy(staff=STAFF), EscalationPolicy(staff=STAFF))
    at = SILENT_AT + dt.timedelta(minutes=5)
    sos = SosEvent(device_ts=at.timestamp(), seq=1, source="button")
    out = svc.handle(ADDR.topic(Channel.SOS), sos.to_payload(), at)
    assert out.kind == "sos" and out.dispatch_id is not None
    silence, urgent = dispatches(database)
    assert (silence.reason, silence.priority) == (DispatchReason.SILENCE, "normal")
    assert (urgent.id, urgent.reason, urgent.priority) == (
        out.dispatch_id,
        DispatchReason.SOS,
        "urgent",
    )
    assert urgent.next_escalation_at == at + dt.timedelta(seconds=60)
    assert purposes(database, urgent.id) == ["sos"]
    assert steps(database, silence.id) == []  # the silence dispatch is left as it was


def silence_opener(db: Database) -> Callable[[], int]:
    def call() -> int:
        with db.session() as s:
            return StoreDispatches().open_silence(s, "h-1", PAGE, SILENT_AT, why="test")

    return call


def offline_opener(db: Database) -> Callable[[], int | None]:
    def call() -> int | None:
        try:
            return open_offline(db, SILENT_AT)
        except LostRace:
            return None

    return call


ON_POSTGRESQL = pytest.mark.parametrize("database", ["postgresql"], indirect=True)
"""Racing needs several writers at once: PostgreSQL (SQLite has one writer)."""


@pytest.mark.postgres
@ON_POSTGRESQL
@pytest.mark.parametrize("first", ["silence", "offline"])
def test_two_collectors_opening_both_at_once_make_one_dispatch(
    database: Database, first: str
) -> None:
    offline_home(database)
    openers = {"silence": silence_opener(database), "offline": offline_opener(database)}
    second = "offline" if first == "silence" else "silence"
    results: dict[str, object] = {}
    # The first collector holds its transaction open; the second starts meanwhile and must wait
    # for it (the household's row lock), then find its dispatch.
    with database.session() as s:
        if first == "silence":
            results[first] = StoreDispatches().open_silence(s, "h-1", PAGE, SILENT_AT, why="a")
        else:
            results[first] = StoreOfflineDispatches(staff=STAFF).open_for(s, "h-1", NOW, SILENT_AT)
        thread = threading.Thread(target=lambda: results.__setitem__(second, openers[second]()))
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the second collector did not wait for the first"
    thread.join(30)
    [dispatch] = dispatches(database)
    assert dispatch.reason is (
        DispatchReason.SILENCE if first == "silence" else DispatchReason.DEVICE_OFFLINE
    )
    assert [step for step, _, _ in steps(database, dispatch.id)] == ["note"]
    with database.session() as s:
        ticket = s.scalars(select(TechnicianTicket)).one()
        assert ticket.dispatch_id == dispatch.id
    if first == "silence":
        assert results == {"silence": dispatch.id, "offline": None}
    else:
        assert results == {"offline": dispatch.id, "silence": dispatch.id}


@pytest.mark.postgres
@ON_POSTGRESQL
@pytest.mark.parametrize("attempt", range(5))
def test_both_released_together_still_make_one_dispatch(database: Database, attempt: int) -> None:
    offline_home(database)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(silence_opener(database),)),
        threading.Thread(target=run, args=(offline_opener(database),)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    [dispatch] = dispatches(database)
    with database.session() as s:
        assert s.scalars(select(TechnicianTicket.dispatch_id)).one() == dispatch.id
