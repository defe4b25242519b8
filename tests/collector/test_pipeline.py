"""The lanes between broker and store: poison, outages and repeats, on both backends."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from collector.pipeline import BulkLane, EventLane, Inbound
from collector.service import Outcome, Service
from collector.store.db import Database
from collector.store.models import (
    DeadLetter,
    Device,
    DeviceDay,
    Dispatch,
    EventRecord,
    Notification,
)
from firmware_config.messages import CancelAck, Heartbeat, SosAck, SosCancel, SosEvent
from firmware_config.topics import Channel, DeviceAddress
from tests.collector.helpers import DISTRICT, NOW, register_homes
from tests.support.postgres import PostgresUnavailable, start_postgres

ADDR = DeviceAddress(DISTRICT, "h-1", "dev-1")
ADDR2 = DeviceAddress(DISTRICT, "h-2", "dev-2")


def count(db: Database, model: type) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def wait_until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def heartbeat(seq: int, *, motion: int = 1, device_ts: float | None = None) -> Heartbeat:
    return Heartbeat(
        device_ts=NOW.timestamp() if device_ts is None else device_ts,
        seq=seq,
        interval_s=60,
        motion_count=motion,
        speech_s=0,
        wake_word_count=0,
        interactions=0,
        uptime_s=60.0 * seq,
        audio_overruns=0,
        outbox_depth=seq,
        agent_version="0.1.0",
    )


class Acks:
    """Records which messages a lane acknowledged, in order."""

    def __init__(self) -> None:
        self.done: list[str] = []

    def inbound(self, name: str, topic: str, payload: bytes, at: dt.datetime = NOW) -> Inbound:
        return Inbound(topic, payload, at, lambda: self.done.append(name))


# -- repeats, in any order and any number ---------------------------------------------------


def test_sos_cancel_sos_cancel_each_have_their_effect_once_and_every_copy_is_acked(
    database: Database,
) -> None:
    register_homes(database)
    svc = Service(database)
    first = SosEvent(device_ts=NOW.timestamp(), seq=1, source="button")
    cancel1 = SosCancel(device_ts=NOW.timestamp(), seq=2, sos_id=first.message_id, source="button")
    second = SosEvent(device_ts=NOW.timestamp(), seq=3, source="voice", phrase="살려줘")
    cancel2 = SosCancel(device_ts=NOW.timestamp(), seq=4, sos_id=second.message_id, source="voice")
    outcomes: list[Outcome] = []
    for message, channel in [
        (first, Channel.SOS),
        (cancel1, Channel.SOS_CANCEL),
        (second, Channel.SOS),
        (cancel2, Channel.SOS_CANCEL),
    ]:
        for _copy in range(3):  # the original and two redeliveries
            outcomes.append(svc.handle(ADDR.topic(channel), message.to_payload(), NOW))
    kinds = [o.kind for o in outcomes]
    assert kinds == ["sos", "duplicate", "duplicate", "sos_cancel", "duplicate", "duplicate"] * 2
    acks = [cmd for o in outcomes for _, cmd in o.commands]
    assert len(acks) == 12, "every copy is acknowledged, redeliveries included"
    assert all(isinstance(a, SosAck) for a in acks[0:3] + acks[6:9])
    assert all(isinstance(a, CancelAck) and a.dispatch_id is not None for a in acks[3:6] + acks[9:])
    assert count(database, Dispatch) == 1
    with database.session() as s:
        purposes = sorted(n.purpose for n in s.scalars(select(Notification)))
    # caregiver SMS + e-mail, guardian SMS: for the SOS, each cancel and the repeated SOS
    assert len(purposes) == 12 and len(set(purposes)) == 4
    assert count(database, EventRecord) == 4 and count(database, DeadLetter) == 0


def test_a_cancel_that_overtakes_its_sos_still_marks_the_dispatch(database: Database) -> None:
    register_homes(database)
    svc = Service(database)
    sos = SosEvent(device_ts=NOW.timestamp(), seq=1, source="button")
    cancel = SosCancel(device_ts=NOW.timestamp(), seq=2, sos_id=sos.message_id, source="button")
    early = svc.handle(ADDR.topic(Channel.SOS_CANCEL), cancel.to_payload(), NOW)
    assert early.kind == "sos_cancel" and early.dispatch_id is None and early.commands
    out = svc.handle(ADDR.topic(Channel.SOS), sos.to_payload(), NOW + dt.timedelta(seconds=1))
    with database.session() as s:
        dispatch = s.get(Dispatch, out.dispatch_id)
        assert dispatch is not None and dispatch.cancelled_by_resident_at is not None
        purposes = {n.purpose.split("-")[0] for n in s.scalars(select(Notification))}
    assert purposes == {"sos", "cancel"}


def test_heartbeats_are_idempotent_and_the_highest_seq_wins(database: Database) -> None:
    register_homes(database)
    svc = Service(database)
    newer, older = heartbeat(5, motion=2), heartbeat(4, motion=3)
    for hb in (newer, newer, older):
        svc.handle(ADDR.topic(Channel.HEARTBEAT), hb.to_payload(), NOW)
    with database.session() as s:
        device = s.get(Device, "dev-1")
        assert device is not None and (device.last_seq, device.last_outbox_depth) == (5, 5)
        [day] = s.scalars(select(DeviceDay)).all()
    # the redelivered copy does not count twice; the older one arrived late and is not counted
    assert (day.heartbeats, day.motion_count) == (1, 2)


def test_a_far_off_device_clock_is_recorded_and_overruled(database: Database) -> None:
    register_homes(database)
    svc = Service(database)
    ten_years = 10 * 365 * 24 * 3600
    hb = heartbeat(1, device_ts=NOW.timestamp() + ten_years)
    svc.handle(ADDR.topic(Channel.HEARTBEAT), hb.to_payload(), NOW)
    with database.session() as s:
        device = s.get(Device, "dev-1")
        assert device is not None and device.last_life_sign_at == NOW
        assert device.clock_offset_s is not None and device.clock_offset_s > ten_years - 10


# -- poison: found, dead-lettered, acknowledged; everything else applied -----------------------


def _make_poison(db: Database, device_id: str) -> None:
    """A trigger that refuses any update of one device: a store-level failure no check foresaw."""
    with db.engine.begin() as conn:
        if db.dialect == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER poison BEFORE UPDATE ON devices "
                    f"WHEN OLD.id = '{device_id}' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                    f"IF OLD.id = '{device_id}' THEN RAISE EXCEPTION 'poisoned'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER poison BEFORE UPDATE ON devices "
                    "FOR EACH ROW EXECUTE FUNCTION poison()"
                )
            )


def _drop_poison(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            text("DROP TRIGGER poison" + ("" if db.dialect == "sqlite" else " ON devices"))
        )


def test_a_message_the_store_refuses_is_found_dead_lettered_and_the_batch_goes_on(
    database: Database,
) -> None:
    register_homes(database)
    _make_poison(database, "dev-2")
    try:
        lane = BulkLane(Service(database), clock=lambda: NOW, batch_max=100, batch_wait_s=0)
        acks = Acks()
        batch = [
            acks.inbound(f"hb{n}", ADDR.topic(Channel.HEARTBEAT), heartbeat(n).to_payload())
            for n in range(1, 40)
        ]
        batch.insert(
            17, acks.inbound("poison", ADDR2.topic(Channel.HEARTBEAT), heartbeat(1).to_payload())
        )
        lane.settle(batch)
    finally:
        _drop_poison(database)
    assert sorted(acks.done) == sorted([f"hb{n}" for n in range(1, 40)] + ["poison"])
    with database.session() as s:
        [letter] = s.scalars(select(DeadLetter)).all()
        assert "poisoned" in letter.reason and "dev-2" in letter.topic
        device = s.get(Device, "dev-1")
        assert device is not None and device.last_seq == 39
    assert lane.dead_lettered == 1 and lane.outage_since is None


def test_an_event_the_store_refuses_is_dead_lettered_and_the_next_sos_lands(
    database: Database,
) -> None:
    register_homes(database)
    _make_poison(database, "dev-2")
    try:
        outcomes: list[Outcome] = []
        lane = EventLane(Service(database), clock=lambda: NOW, on_outcome=outcomes.append)
        acks = Acks()
        bad = SosEvent(device_ts=NOW.timestamp(), seq=1, source="button")
        good = SosEvent(device_ts=NOW.timestamp(), seq=2, source="button")
        lane.settle([acks.inbound("bad", ADDR2.topic(Channel.SOS), bad.to_payload())])
        lane.settle([acks.inbound("good", ADDR.topic(Channel.SOS), good.to_payload())])
    finally:
        _drop_poison(database)
    assert acks.done == ["bad", "good"]
    assert [o.kind for o in outcomes] == ["sos"]
    assert count(database, Dispatch) == 1 and count(database, DeadLetter) == 1


# -- a database that goes away ---------------------------------------------------------------


def test_a_stopped_postgresql_holds_messages_unacked_and_ingestion_resumes_by_itself() -> None:
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        db = Database(server.create_database("outage"))
        register_homes(db)
        outcomes: list[Outcome] = []
        lane = EventLane(
            Service(db), clock=lambda: NOW, on_outcome=outcomes.append, max_backoff_s=0.2
        )
        acks = Acks()
        server.pause()
        sos = SosEvent(device_ts=NOW.timestamp(), seq=1, source="button")
        worker = threading.Thread(
            target=lane.settle,
            args=([acks.inbound("sos", ADDR.topic(Channel.SOS), sos.to_payload())],),
        )
        worker.start()
        wait_until(lambda: lane.outage_since is not None)
        time.sleep(1.0)
        assert acks.done == [], "nothing is acknowledged while the database is away"
        assert lane.health()["database_outage_since"] is not None
        server.start()
        worker.join(timeout=30)
        assert acks.done == ["sos"] and [o.kind for o in outcomes] == ["sos"]
        assert lane.outage_since is None and lane.store_failures >= 1
        assert count(db, Dispatch) == 1
        db.dispose()
    finally:
        server.stop()


def test_a_locked_sqlite_database_delays_but_loses_nothing(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'locked.sqlite3'}")
    register_homes(db)
    lane = BulkLane(Service(db), clock=lambda: NOW, batch_max=10, batch_wait_s=0)
    acks = Acks()
    locker = db.engine.raw_connection()
    locker.execute("BEGIN EXCLUSIVE")  # type: ignore[attr-defined]
    worker = threading.Thread(
        target=lane.settle,
        args=([acks.inbound("hb", ADDR.topic(Channel.HEARTBEAT), heartbeat(1).to_payload())],),
    )
    worker.start()
    time.sleep(1.5)
    assert acks.done == []
    locker.rollback()
    locker.close()
    worker.join(timeout=30)
    assert acks.done == ["hb"]
    with db.session() as s:
        device = s.get(Device, "dev-1")
        assert device is not None and device.last_seq == 1


def test_dead_letters_keep_the_reason_for_every_kind_of_bad_value(database: Database) -> None:
    register_homes(database)
    lane = BulkLane(Service(database), clock=lambda: NOW, batch_max=100, batch_wait_s=0)
    acks = Acks()
    good = json.loads(heartbeat(1).to_payload())
    bad_payloads = [
        b"[" * 2048,
        json.dumps({**good, "device_ts": 1e12}).encode(),
        json.dumps({**good, "seq": 2**63}).encode(),
        json.dumps({**good, "agent_version": "x\u0000"}).encode(),
        json.dumps({k: v for k, v in good.items() if k != "message_id"}).encode(),
        b'{"device_ts": Infinity}',
    ]
    batch = [
        acks.inbound(f"bad{n}", ADDR.topic(Channel.HEARTBEAT), p)
        for n, p in enumerate(bad_payloads)
    ]
    batch.append(acks.inbound("good", ADDR.topic(Channel.HEARTBEAT), heartbeat(2).to_payload()))
    lane.settle(batch)
    assert len(acks.done) == len(batch)
    assert count(database, DeadLetter) == len(bad_payloads)
    with database.session() as s:
        device = s.get(Device, "dev-1")
        assert device is not None and device.last_seq == 2


# -- re-sent SOS copies after an outage ----------------------------------------------------------


class CountingService(Service):
    """Counts the transactions the event lane asks for."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.applied_events = 0
        self.decoded = 0

    def decode(self, items: Any) -> Any:
        self.decoded += len(items)
        return super().decode(items)

    def apply_event(self, item: Any) -> Outcome:
        self.applied_events += 1
        return super().apply_event(item)


def test_copies_of_an_sos_cost_one_transaction_and_every_copy_is_acked_and_answered(
    database: Database,
) -> None:
    register_homes(database)
    svc = CountingService(database)
    outcomes: list[Outcome] = []
    ticks = [0.0]
    lane = EventLane(svc, clock=lambda: NOW, on_outcome=outcomes.append, monotonic=lambda: ticks[0])
    acks = Acks()
    first = SosEvent(device_ts=NOW.timestamp(), seq=1, source="button")
    other = SosEvent(device_ts=NOW.timestamp(), seq=1, source="button")
    # what queues up during an outage: an agent re-sending every second, two homes
    batch = [acks.inbound(f"a{n}", ADDR.topic(Channel.SOS), first.to_payload()) for n in range(5)]
    batch += [acks.inbound(f"b{n}", ADDR2.topic(Channel.SOS), other.to_payload()) for n in range(3)]
    lane.settle(batch)
    assert svc.applied_events == 2, "one transaction per SOS, not per copy"
    assert len(acks.done) == 8, "every copy is acknowledged to the broker"
    assert lane.collapsed == 6
    assert [o.kind for o in outcomes] == ["sos", "sos"]
    dispatch_of = {o.commands[0][1].sos_id: o.dispatch_id for o in outcomes}  # type: ignore[union-attr]
    # later copies of a committed SOS are answered from memory: the ack again, no transaction
    lane.settle(
        [acks.inbound(f"c{n}", ADDR.topic(Channel.SOS), first.to_payload()) for n in range(4)]
    )
    assert svc.applied_events == 2 and lane.answered_from_memory == 1 and lane.collapsed == 10
    assert svc.decoded == 2, "byte-identical copies are not even decoded"
    again = outcomes[-1]
    assert again.kind == "duplicate"
    [(address, ack)] = again.commands
    assert address == ADDR and isinstance(ack, SosAck)
    assert ack.sos_id == first.message_id and ack.dispatch_id == dispatch_of[first.message_id]
    assert len(acks.done) == 12
    # the same message id from another device is not taken for a copy
    lane.settle([acks.inbound("spoof", ADDR2.topic(Channel.SOS), first.to_payload())])
    assert svc.applied_events == 3 and outcomes[-1].kind == "duplicate"
    assert count(database, Dispatch) == 2 and count(database, EventRecord) == 2
    # a forgotten SOS (its memory expired) goes to the store again, which answers the same
    ticks[0] += lane.remember_s + 1
    lane.settle([acks.inbound("late", ADDR.topic(Channel.SOS), first.to_payload())])
    assert svc.applied_events == 4 and outcomes[-1].kind == "duplicate"
    assert outcomes[-1].dispatch_id == dispatch_of[first.message_id]
