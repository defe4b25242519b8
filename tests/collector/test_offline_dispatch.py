"""A device offline long enough opens one ``device_offline`` dispatch, which follows its chain and
is settled when the device returns; SQLite and PostgreSQL, through the supervision runtime."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.domain.dispatch import Contact, DispatchPolicy
from collector.domain.escalation import (
    ChainStep,
    DistrictContacts,
    EscalationBook,
    EscalationChain,
    EscalationPolicy,
)
from collector.domain.reports import Month
from collector.domain.supervision import (
    DeviceHealth,
    HeartbeatFacts,
    SupervisionSettings,
    WhenBack,
    home_offline_since,
    offline_dispatch_due,
    when_device_back,
)
from collector.offline_dispatch import NotYet, StoreOfflineDispatches
from collector.service import Service
from collector.store.accounts import AuditEntry, DispatchStep, Role
from collector.store.db import Database
from collector.store.models import (
    Device,
    Dispatch,
    DispatchReason,
    DispatchStatus,
    Notification,
)
from collector.store.silence import TechnicianTicket
from collector.supervision_runtime import SupervisionRuntime
from collector.web.access import Viewer
from collector.web.records import monthly_reports
from tests.collector.helpers import DISTRICT, NOW, register_homes

S = SupervisionSettings(heartbeat_interval_s=60, missed_heartbeats=3, offline_dispatch_after_s=600)
BEAT = HeartbeatFacts(
    interval_s=60,
    uptime_s=100,
    audio_overruns=0,
    outbox_depth=0,
    motion_count=1,
    speech_s=1.0,
    interactions=0,
)
STAFF = Contact("staff", "동주민센터", None, "staff@example.org")
ADMIN = Viewer(1, "admin", "관리자", Role.ADMIN, None, None, "ko")
POLICY = EscalationPolicy(
    staff=STAFF,
    book=EscalationBook(
        defaults={"device_offline": EscalationChain((ChainStep(("department",), after_s=3600),))},
        contacts={DISTRICT: DistrictContacts(department=Contact("department", "과", "010-7", ""))},
    ),
)


class FakeClock:
    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> dt.datetime:
        return self.at


def runtime(db: Database, clock: FakeClock) -> tuple[SupervisionRuntime, list[int]]:
    woken: list[int] = []
    rt = SupervisionRuntime(
        db,
        settings=S,
        clock=clock,
        dispatches=StoreOfflineDispatches(escalation=POLICY, staff=STAFF),
        on_notify=lambda: woken.append(1),
    )
    rt.restore()
    return rt, woken


def heard(db: Database, device_id: str, at: dt.datetime) -> None:
    """What the ingest writes with a heartbeat."""
    with db.session() as s:
        device = s.get(Device, device_id)
        assert device is not None
        device.last_heartbeat_at = at


def offline_dispatches(db: Database) -> list[Dispatch]:
    with db.session() as s:
        rows = s.scalars(
            select(Dispatch).where(Dispatch.reason == DispatchReason.DEVICE_OFFLINE)
        ).all()
        s.expunge_all()
        return list(rows)


def purposes(db: Database, dispatch_id: int) -> list[tuple[str, str, str]]:
    with db.session() as s:
        return sorted(
            (n.purpose, n.recipient_role, n.channel)
            for n in s.scalars(select(Notification).where(Notification.dispatch_id == dispatch_id))
        )


def test_one_dispatch_per_outage_its_chain_and_its_end_when_the_device_returns(
    database: Database,
) -> None:
    register_homes(database, ("dev-1",))
    clock = FakeClock()
    a, woken = runtime(database, clock)
    b, _ = runtime(database, clock)
    for rt in (a, b):
        rt.on_heartbeat("dev-1", "h-1", BEAT, NOW)
    heard(database, "dev-1", NOW)
    clock.at = NOW + dt.timedelta(minutes=3)  # offline: a ticket, no dispatch yet
    assert len(a.tick()) == 1 and b.tick() == []
    clock.at = NOW + dt.timedelta(seconds=599)
    a.tick(), b.tick()
    assert offline_dispatches(database) == []
    clock.at = NOW + dt.timedelta(seconds=600)  # counted from the last heartbeat
    a.tick(), b.tick()
    [dispatch] = offline_dispatches(database)
    assert dispatch.status is DispatchStatus.OPEN and dispatch.household_id == "h-1"
    assert dispatch.next_escalation_at == clock.at + dt.timedelta(hours=1)
    assert woken == [1]
    # The caregiver is told by SMS and e-mail; the guardian is not.
    assert purposes(database, dispatch.id) == [
        ("device_offline", "caregiver", "email"),
        ("device_offline", "caregiver", "sms"),
    ]
    with database.session() as s:
        [ticket] = s.scalars(select(TechnicianTicket)).all()
        assert ticket.dispatch_id == dispatch.id
    # Later ticks, the other collector, a restarted one: still one dispatch.
    c, _ = runtime(database, clock)
    for minute in range(1, 30):
        clock.at = NOW + dt.timedelta(seconds=600, minutes=minute)
        for rt in (a, b, c):
            rt.tick()
    assert len(offline_dispatches(database)) == 1
    # It follows the device_offline chain: the department after an hour.
    svc = Service(database, DispatchPolicy(staff=STAFF), POLICY)
    clock.at = NOW + dt.timedelta(seconds=600, hours=1)
    assert svc.escalate_due(clock.at) == 1
    assert ("escalation-1", "department", "sms") in purposes(database, dispatch.id)
    # The device comes back: the ticket closes, the dispatch is resolved as a device problem.
    clock.at += dt.timedelta(minutes=5)
    b.on_heartbeat("dev-1", "h-1", BEAT, clock.at)
    heard(database, "dev-1", clock.at)
    closed = [d for rt in (a, b, c) for d in rt.tick()]
    assert [type(d).__name__ for d in closed] == ["CloseTicket"]
    [dispatch] = offline_dispatches(database)
    assert dispatch.status is DispatchStatus.RESOLVED
    assert dispatch.outcome == "device_problem" and dispatch.next_escalation_at is None
    assert dispatch.resolved_at == clock.at
    # Nobody acknowledged it: the reports' acknowledgement times leave it out.
    assert (dispatch.acknowledged_at, dispatch.acknowledged_by) == (None, None)
    with database.session() as s:
        [report] = monthly_reports(s, ADMIN, Month.of(dispatch.created_at))
        assert report.acknowledgement.count == 0
    assert ("device_back", "caregiver", "sms") in purposes(database, dispatch.id)
    with database.session() as s:
        steps = s.scalars(select(DispatchStep).where(DispatchStep.dispatch_id == dispatch.id))
        assert [(st.step, st.by, st.outcome) for st in steps] == [
            ("resolved", "anbu", "device_problem")
        ]
        audit = s.scalars(select(AuditEntry).where(AuditEntry.dispatch_id == dispatch.id)).all()
        assert [(e.actor, e.action, e.district) for e in audit] == [("anbu", "resolved", DISTRICT)]
    # A second outage is a new dispatch.
    clock.at += dt.timedelta(minutes=3)
    assert [d.kind.value for d in a.tick()] == ["offline"]
    clock.at += dt.timedelta(minutes=10)
    a.tick(), b.tick()
    assert [d.status for d in offline_dispatches(database)] == [
        DispatchStatus.RESOLVED,
        DispatchStatus.OPEN,
    ]


def test_a_dispatch_a_caregiver_took_gets_a_note_and_stays_theirs(database: Database) -> None:
    register_homes(database, ("dev-1",))
    clock = FakeClock()
    rt, _ = runtime(database, clock)
    rt.on_heartbeat("dev-1", "h-1", BEAT, NOW)
    heard(database, "dev-1", NOW)
    rt.on_state("dev-1", "h-1", "offline", NOW + dt.timedelta(seconds=30))  # last will
    clock.at = NOW + dt.timedelta(seconds=630)
    rt.tick()
    [dispatch] = offline_dispatches(database)
    with database.session() as s:
        row = s.get(Dispatch, dispatch.id)
        assert row is not None
        row.status, row.acknowledged_at, row.acknowledged_by = (
            DispatchStatus.ACKNOWLEDGED,
            clock.at,
            "김지원",
        )
        row.next_escalation_at = None
    clock.at += dt.timedelta(minutes=1)
    rt.on_state("dev-1", "h-1", "online", clock.at)
    rt.on_heartbeat("dev-1", "h-1", BEAT, clock.at)
    heard(database, "dev-1", clock.at)
    rt.tick()
    [dispatch] = offline_dispatches(database)
    assert dispatch.status is DispatchStatus.ACKNOWLEDGED and dispatch.outcome is None
    assert dispatch.note is not None and "기기 다시 연결됨" in dispatch.note
    with database.session() as s:
        steps = s.scalars(select(DispatchStep).where(DispatchStep.dispatch_id == dispatch.id))
        assert [(st.step, st.by) for st in steps] == [("note", "anbu")]


def test_a_restarted_collector_dispatches_at_the_original_time(database: Database) -> None:
    """The outage is counted from the stored last heartbeat, not from the restart."""
    register_homes(database, ("dev-1",))
    heard(database, "dev-1", NOW)
    clock = FakeClock()
    clock.at = NOW + dt.timedelta(minutes=8)  # the collector was down; it starts now
    rt, _ = runtime(database, clock)
    rt.tick()  # within the restart grace: undecided
    assert offline_dispatches(database) == []
    clock.at = NOW + dt.timedelta(minutes=10, seconds=59)
    rt.tick()  # still within the 3 minutes' grace after the restart
    assert offline_dispatches(database) == []
    clock.at = NOW + dt.timedelta(minutes=11)  # grace over; 600 s since the beat long past
    rt.tick()  # the ticket, then the dispatch, in one tick
    [dispatch] = offline_dispatches(database)
    assert dispatch.created_at == clock.at
    with database.session() as s:
        body = s.scalars(
            select(Notification.body).where(Notification.dispatch_id == dispatch.id)
        ).first()
    assert body is not None and "12:00 KST" in body  # offline since 03:00 UTC


def test_a_home_with_one_device_still_up_is_not_dispatched(database: Database) -> None:
    register_homes(database, ("dev-1",))
    with database.session() as s:
        s.add(Device(id="dev-9", household_id="h-1"))
    clock = FakeClock()
    rt, _ = runtime(database, clock)
    rt.on_heartbeat("dev-1", "h-1", BEAT, NOW)
    for minute in range(0, 30, 1):
        clock.at = NOW + dt.timedelta(minutes=minute)
        rt.on_heartbeat("dev-9", "h-1", BEAT, clock.at)
        heard(database, "dev-9", clock.at)
        rt.tick()
    assert offline_dispatches(database) == []
    with database.session() as s:  # dev-1 has its technician ticket all the same
        assert [t.device_id for t in s.scalars(select(TechnicianTicket))] == ["dev-1"]


def test_ticket_closed_by_hand_does_not_open_a_second_dispatch(database: Database) -> None:
    register_homes(database, ("dev-1",))
    heard(database, "dev-1", NOW)
    clock = FakeClock()
    rt, _ = runtime(database, clock)
    rt.on_heartbeat("dev-1", "h-1", BEAT, NOW)
    clock.at = NOW + dt.timedelta(minutes=11)
    rt.tick(), rt.tick()
    assert len(offline_dispatches(database)) == 1
    with database.session() as s:  # staff close the ticket by hand; the device is still off
        for ticket in s.scalars(select(TechnicianTicket)):
            ticket.closed_at = clock.at
    fresh, _ = runtime(database, clock)  # a restart forgets the in-memory mark too
    clock.at += dt.timedelta(minutes=4)
    fresh.tick(), fresh.tick()
    assert len(offline_dispatches(database)) == 1
    with database.session() as s:
        links = [t.dispatch_id for t in s.scalars(select(TechnicianTicket).order_by("id"))]
    assert links[0] == links[1] == offline_dispatches(database)[0].id


def test_pure_rules() -> None:
    since = NOW - dt.timedelta(hours=1)
    up = DeviceHealth("a", "h", last_heartbeat_at=NOW)
    down = DeviceHealth("b", "h", last_heartbeat_at=since)
    gone = DeviceHealth("c", "h", state="offline", state_at=since + dt.timedelta(minutes=5))
    assert home_offline_since([up, down], now=NOW, settings=S) is None
    assert home_offline_since([down, gone], now=NOW, settings=S) == since + dt.timedelta(minutes=5)
    assert home_offline_since([], now=NOW, settings=S) is None
    assert offline_dispatch_due(since, now=since + dt.timedelta(seconds=600), settings=S)
    assert not offline_dispatch_due(since, now=since + dt.timedelta(seconds=599), settings=S)
    off = SupervisionSettings(offline_dispatch_after_s=0)
    assert not offline_dispatch_due(since, now=NOW + dt.timedelta(days=9), settings=off)
    assert [when_device_back(s) for s in ("open", "acknowledged", "on_site", "resolved")] == [
        WhenBack.RESOLVE,
        WhenBack.NOTE,
        WhenBack.NOTE,
        WhenBack.NOTHING,
    ]
    with pytest.raises(ValueError, match="offline_dispatch_after_s"):
        SupervisionSettings(offline_dispatch_after_s=-1)


class FakeNotYetOnce(StoreOfflineDispatches):
    """Finds no ticket to link the first time, as when the ticket's write failed."""

    def __init__(self) -> None:
        super().__init__(escalation=POLICY, staff=STAFF)
        self.refused = 0

    def open_for(
        self, session: Session, household_id: str, since: dt.datetime, now: dt.datetime
    ) -> int | None:
        if not self.refused:
            self.refused += 1
            raise NotYet(household_id)
        return super().open_for(session, household_id, since, now)


def test_no_ticket_to_link_delays_the_dispatch_to_the_next_tick_but_does_not_lose_it(
    database: Database,
) -> None:
    register_homes(database, ("dev-1",))
    heard(database, "dev-1", NOW)
    clock = FakeClock()
    fake = FakeNotYetOnce()
    rt = SupervisionRuntime(database, settings=S, clock=clock, dispatches=fake)
    rt.restore()
    rt.on_heartbeat("dev-1", "h-1", BEAT, NOW)
    clock.at = NOW + dt.timedelta(minutes=11)
    rt.tick()
    assert fake.refused == 1 and offline_dispatches(database) == []
    clock.at += dt.timedelta(minutes=1)
    rt.tick()
    assert len(offline_dispatches(database)) == 1
    # With no open ticket at all, the store says so.
    with database.session() as s, pytest.raises(NotYet):
        StoreOfflineDispatches().open_for(s, "h-9", NOW, NOW)
