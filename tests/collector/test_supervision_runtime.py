"""Supervision in the collector: tickets in a real database, once across two collectors."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from collector.domain.supervision import HeartbeatFacts, SupervisionSettings, TicketKind
from collector.store.db import Database
from collector.store.models import Device
from collector.store.silence import TechnicianTicket
from collector.supervision_runtime import SupervisionRuntime
from tests.collector.helpers import NOW, register_homes

S = SupervisionSettings(heartbeat_interval_s=60, missed_heartbeats=3)
BEAT = HeartbeatFacts(
    interval_s=60,
    uptime_s=100,
    audio_overruns=0,
    outbox_depth=0,
    motion_count=1,
    speech_s=1.0,
    interactions=0,
)


class FakeClock:
    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> dt.datetime:
        return self.at


def test_missed_heartbeats_open_one_ticket_across_collectors_and_a_heartbeat_closes_it(
    database: Database,
) -> None:
    register_homes(database, ("dev-1",))
    clock = FakeClock()
    changes: list[tuple[str, bool]] = []
    a = SupervisionRuntime(
        database,
        settings=S,
        clock=clock,
        on_offline_changed=lambda h, off: changes.append((h, off)),
    )
    b = SupervisionRuntime(database, settings=S, clock=clock)
    for rt in (a, b):
        rt.restore()
        rt.on_heartbeat("dev-1", "h-1", BEAT, NOW)
    with database.session() as s:  # what the ingest stores with the heartbeat
        s.get(Device, "dev-1").last_heartbeat_at = NOW  # type: ignore[union-attr]
    assert a.tick() == [] and b.tick() == []
    clock.at = NOW + dt.timedelta(minutes=3)
    assert len(a.tick()) == 1
    assert b.tick() == []  # b's insert lost to a's: one ticket
    with database.session() as s:
        tickets = s.scalars(select(TechnicianTicket)).all()
        assert [(t.device_id, t.kind, t.closed_at) for t in tickets] == [
            ("dev-1", TicketKind.OFFLINE.value, None)
        ]
    assert changes == [("h-1", True)]
    # A restarted collector reads the open ticket back and does not open another.
    c = SupervisionRuntime(database, settings=S, clock=clock)
    c.restore()
    assert c.tick() == []
    clock.at += dt.timedelta(minutes=1)
    a.on_heartbeat("dev-1", "h-1", BEAT, clock.at)
    closed = a.tick()
    assert [type(d).__name__ for d in closed] == ["CloseTicket"]
    assert changes == [("h-1", True), ("h-1", False)]
    with database.session() as s:
        ticket = s.scalars(select(TechnicianTicket)).one()
        assert ticket.closed_at == clock.at


def test_last_will_opens_a_ticket_at_once(database: Database) -> None:
    register_homes(database, ("dev-1",))
    clock = FakeClock()
    rt = SupervisionRuntime(database, settings=S, clock=clock)
    rt.restore()
    rt.on_heartbeat("dev-1", "h-1", BEAT, NOW)
    rt.on_state("dev-1", "h-1", "offline", NOW)
    opened = rt.tick()
    assert [(type(d).__name__, d.kind) for d in opened] == [("OpenTicket", TicketKind.OFFLINE)]
    assert rt.health()["open_tickets"] == 1


def store_heard(database: Database, at: dt.datetime, *, online: bool | None = None) -> None:
    """What the ingest of whichever collector heard the device wrote to ``devices``."""
    with database.session() as s:
        device = s.get(Device, "dev-1")
        assert device is not None
        if online is None:
            device.last_heartbeat_at = at
        else:
            device.online, device.state_changed_at = online, at


def test_heartbeats_heard_by_the_other_collector_open_no_offline_ticket(
    database: Database,
) -> None:
    """A shared subscription gives each collector only its share of a device's messages."""
    register_homes(database, ("dev-1",))
    clock = FakeClock()
    changes: list[tuple[str, bool]] = []
    a = SupervisionRuntime(
        database,
        settings=S,
        clock=clock,
        on_offline_changed=lambda h, off: changes.append((h, off)),
    )
    b = SupervisionRuntime(database, settings=S, clock=clock)
    a.restore()
    b.restore()
    a.on_heartbeat("dev-1", "h-1", BEAT, NOW)
    store_heard(database, NOW)
    for minute in range(1, 6):  # every later heartbeat reaches b only
        clock.at = NOW + dt.timedelta(minutes=minute)
        b.on_heartbeat("dev-1", "h-1", BEAT, clock.at)
        store_heard(database, clock.at)
        assert a.tick() == [] and b.tick() == []
    assert changes == []
    # The device really stops: both now see the missed heartbeats; one ticket.
    clock.at += dt.timedelta(minutes=3)
    assert len(a.tick()) + len(b.tick()) == 1
    # Its last will reached a only; it came back and b heard "online": a closes the ticket.
    a.on_state("dev-1", "h-1", "offline", clock.at)
    clock.at += dt.timedelta(minutes=1)
    b.on_state("dev-1", "h-1", "online", clock.at)
    b.on_heartbeat("dev-1", "h-1", BEAT, clock.at)
    store_heard(database, clock.at, online=True)
    store_heard(database, clock.at)
    closed = [d for rt in (a, b) for d in rt.tick()]
    assert [type(d).__name__ for d in closed] == ["CloseTicket"]
    with database.session() as s:
        assert s.scalars(select(TechnicianTicket)).one().closed_at == clock.at


def test_a_collector_back_after_an_outage_waits_before_calling_devices_offline(
    database: Database,
) -> None:
    register_homes(database, ("dev-1", "dev-2"))
    store_heard(database, NOW - dt.timedelta(hours=2))  # dev-1's last heartbeat before the outage
    clock = FakeClock()
    rt = SupervisionRuntime(database, settings=S, clock=clock)
    rt.restore()
    rt.on_state("dev-2", "h-2", "offline", NOW)  # a last will is news, judged at once
    opened = rt.tick()
    assert [(d.device_id, d.kind) for d in opened] == [("dev-2", TicketKind.OFFLINE)]
    clock.at = NOW + dt.timedelta(minutes=2)
    assert rt.tick() == []  # dev-1 may still be heard: 3 heartbeat intervals from the restart
    clock.at = NOW + dt.timedelta(minutes=3)
    opened = rt.tick()
    assert [(d.device_id, d.kind) for d in opened] == [("dev-1", TicketKind.OFFLINE)]
