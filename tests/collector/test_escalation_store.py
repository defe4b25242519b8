"""Escalation chains over the real store, SQLite and PostgreSQL, with a fake clock.

Every kind's chain is run to its end through ``Service.escalate_due`` (the claim with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL); a collector restarted mid-chain carries on from the
stored level and time; two collectors ticking together take each step once; an acknowledgement
stops the chain; a notification the SMS gateway refuses brings the next step forward.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter

from sqlalchemy import select

from collector.domain.dispatch import Contact, DispatchPolicy
from collector.domain.escalation import (
    ChainStep,
    DistrictContacts,
    EscalationBook,
    EscalationChain,
    EscalationPolicy,
)
from collector.notify.sms import HttpSmsNotifier
from collector.notify.worker import NotificationWorker
from collector.service import Service
from collector.store.db import Database
from collector.store.models import (
    Caregiver,
    Device,
    Dispatch,
    DispatchReason,
    DispatchStatus,
    Household,
    Notification,
    NotificationStatus,
    Priority,
)
from firmware_config.messages import SosEvent
from firmware_config.topics import Channel, DeviceAddress
from tests.support.sms_gateway import SmsGateway

T0 = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)  # Tuesday 11:00 KST
DISTRICT = "seodaemun"
STAFF = Contact("staff", "동주민센터", None, "staff@example.org")
BOOK = EscalationBook(
    defaults={
        "sos": EscalationChain(
            (
                ChainStep(("backup",), after_s=180),
                ChainStep(("supervisor",), after_s=180),
                ChainStep(("emergency",), after_s=300),
            )
        ),
        "silence": EscalationChain(
            (ChainStep(("backup",), after_s=900), ChainStep(("supervisor",), after_s=1800))
        ),
        "device_offline": EscalationChain((ChainStep(("department",), after_s=3600),)),
        "request": EscalationChain((ChainStep(("supervisor", "department"), working_days=1),)),
    },
    contacts={
        DISTRICT: DistrictContacts(
            Contact("supervisor", "복지정책과", "010-7000-0001", None),
            Contact("department", "희망복지지원단", "010-7000-0002", None),
            Contact("emergency", "구 상황실", "010-7000-0119", None),
        )
    },
)
POLICY = EscalationPolicy(staff=STAFF, book=BOOK)
# Expected (minutes after opening, level, recipient roles) for each kind.
EXPECTED = {
    "sos": [(3, 1, {"backup"}), (6, 2, {"supervisor"}), (11, 3, {"emergency"})],
    "silence": [(15, 1, {"backup"}), (45, 2, {"supervisor"})],
    "device_offline": [(60, 1, {"department"})],
    "request": [(24 * 60, 1, {"supervisor", "department"})],
}


def service(db: Database) -> Service:
    return Service(db, DispatchPolicy(ack_timeout_s=180, staff=STAFF), POLICY)


def seed(db: Database) -> None:
    """A caregiver with a backup, and one household (with a device) per kind."""
    with db.session() as s:
        backup = Caregiver(name="박민수", phone="010-5555-6666", email="", district=DISTRICT)
        s.add(backup)
        s.flush()
        main = Caregiver(
            name="김지원", phone="010-1111-2222", email="", district=DISTRICT, backup_id=backup.id
        )
        s.add(main)
        s.flush()
        for kind in EXPECTED:
            s.add(
                Household(
                    id=f"h-{kind}",
                    district=DISTRICT,
                    resident_name="박순자",
                    caregiver_id=main.id,
                    created_at=T0,
                )
            )
            s.flush()
            s.add(Device(id=f"d-{kind}", household_id=f"h-{kind}"))


def open_dispatches(db: Database, svc: Service) -> dict[str, int]:
    """The SOS through the real event lane; the other kinds as their openers store them."""
    out = svc.handle(
        DeviceAddress(DISTRICT, "h-sos", "d-sos").topic(Channel.SOS),
        SosEvent(device_ts=T0.timestamp(), seq=1, source="button").to_payload(),
        T0,
    )
    assert out.dispatch_id is not None
    ids = {"sos": out.dispatch_id}
    with db.session() as s:
        for kind in ("silence", "device_offline", "request"):
            d = Dispatch(
                household_id=f"h-{kind}",
                reason=DispatchReason(kind),
                priority=Priority.NORMAL,
                status=DispatchStatus.OPEN,
                created_at=T0,
                escalation_level=0,
                next_escalation_at=POLICY.first_due_at(DISTRICT, kind, T0),
            )
            s.add(d)
            s.flush()
            ids[kind] = d.id
    return ids


def escalations(db: Database) -> list[tuple[int, str, str]]:
    with db.session() as s:
        rows = s.execute(
            select(Notification.dispatch_id, Notification.purpose, Notification.recipient_role)
            .where(Notification.purpose.like("escalation-%"))
            .order_by(Notification.id)
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def tick(services: list[Service], start: dt.datetime, end: dt.datetime, step_s: float) -> None:
    now = start
    while now <= end:
        for svc in services:
            svc.escalate_due(now)
        now += dt.timedelta(seconds=step_s)


def check_every_chain(db: Database, ids: dict[str, int]) -> None:
    got = escalations(db)
    for kind, steps in EXPECTED.items():
        mine = [(p, r) for d, p, r in got if d == ids[kind]]
        want = [(f"escalation-{lvl}", role) for _, lvl, roles in steps for role in sorted(roles)]
        assert sorted(mine) == sorted(want), kind  # each step once, none lost
    with db.session() as s:
        for kind, steps in EXPECTED.items():
            d = s.get(Dispatch, ids[kind])
            assert d is not None and d.escalation_level == steps[-1][1]
            assert d.next_escalation_at is None


def test_every_chain_runs_to_its_end_across_a_restart(database: Database) -> None:
    seed(database)
    svc = service(database)
    ids = open_dispatches(database, svc)
    # Nothing before the first step of any chain.
    tick([svc], T0, T0 + dt.timedelta(minutes=2, seconds=50), 10)
    assert escalations(database) == []
    tick([svc], T0, T0 + dt.timedelta(minutes=7), 10)
    # A new collector process: only the store remembers where each chain stands.
    restarted = service(database)
    tick([restarted], T0 + dt.timedelta(minutes=7), T0 + dt.timedelta(hours=2), 30)
    tick([restarted], T0 + dt.timedelta(hours=23), T0 + dt.timedelta(hours=25), 60)
    check_every_chain(database, ids)
    with database.session() as s:
        request = s.get(Dispatch, ids["request"])
        assert request is not None
    # the request's only step came one working day (Wednesday 11:00 KST) after it was made
    times = [
        n.created_at
        for n in database_notifications(database, ids["request"])
        if n.purpose == "escalation-1"
    ]
    assert times and min(times) == T0 + dt.timedelta(days=1)


def database_notifications(db: Database, dispatch_id: int) -> list[Notification]:
    with db.session() as s:
        return list(s.scalars(select(Notification).where(Notification.dispatch_id == dispatch_id)))


def test_two_collectors_ticking_at_once_take_each_step_once(database: Database) -> None:
    seed(database)
    first, second = service(database), service(database)
    ids = open_dispatches(database, first)
    errors: list[BaseException] = []

    def run(svc: Service) -> None:
        try:
            tick([svc], T0, T0 + dt.timedelta(hours=2), 20)
            tick([svc], T0 + dt.timedelta(hours=23), T0 + dt.timedelta(hours=25), 120)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check_every_chain(database, ids)
    counts = Counter(escalations(database))
    assert max(counts.values()) == 1


def test_an_acknowledgement_stops_the_chain_mid_way(database: Database) -> None:
    seed(database)
    svc = service(database)
    ids = open_dispatches(database, svc)
    tick([svc], T0, T0 + dt.timedelta(minutes=4), 10)  # backup told
    with database.session() as s:
        d = s.get(Dispatch, ids["sos"])
        assert d is not None and d.escalation_level == 1
        d.status = DispatchStatus.ACKNOWLEDGED
        d.next_escalation_at = None
    tick([svc], T0 + dt.timedelta(minutes=4), T0 + dt.timedelta(hours=1), 30)
    sos_steps = [p for d, p, _ in escalations(database) if d == ids["sos"]]
    assert sos_steps == ["escalation-1"]


def test_a_refused_sms_brings_the_next_step_forward(database: Database) -> None:
    seed(database)
    with SmsGateway() as gateway:
        gateway.fail_next(1, status=400, error="unknown destination")
        svc = service(database)
        opened = dt.datetime.now(dt.UTC)
        out = svc.handle(
            DeviceAddress(DISTRICT, "h-sos", "d-sos").topic(Channel.SOS),
            SosEvent(device_ts=opened.timestamp(), seq=1, source="button").to_payload(),
            opened,
        )
        assert out.dispatch_id is not None
        sms = HttpSmsNotifier(gateway.url, token=gateway.token, sender="0212345678")
        worker = NotificationWorker(
            database,
            {"sms": sms},
            max_attempts=5,
            clock=lambda: dt.datetime.now(dt.UTC),
            poll_interval_s=0.05,
        )
        worker.start()
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with database.session() as s:
                    d = s.get(Dispatch, out.dispatch_id)
                    assert d is not None and d.next_escalation_at is not None
                    if d.next_escalation_at < opened + dt.timedelta(seconds=60):
                        break
                time.sleep(0.05)
            else:
                raise AssertionError("the failed SMS did not bring the escalation forward")
        finally:
            worker.stop()
            sms.close()
        with database.session() as s:
            failed = s.scalars(
                select(Notification).where(Notification.status == NotificationStatus.FAILED)
            ).all()
            assert [n.recipient_role for n in failed] == ["caregiver"]
        # The backup is told at the next tick, not three minutes later.
        assert svc.escalate_due(dt.datetime.now(dt.UTC)) == 1
        assert [r for _, _, r in escalations(database)] == ["backup"]
