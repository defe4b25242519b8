"""The ingest path after the broker, on both SQLite and PostgreSQL (``database`` fixture)."""

import datetime as dt

from sqlalchemy import func, select

from collector.domain.dispatch import Contact, DispatchPolicy
from collector.domain.escalation import EscalationPolicy
from collector.service import Service
from collector.store.db import Database
from collector.store.models import (
    DeadLetter,
    Device,
    DeviceDay,
    Dispatch,
    EventRecord,
    Notification,
)
from firmware_config.messages import (
    Heartbeat,
    MotionEvent,
    SosAck,
    SosCancel,
    SosEvent,
    State,
)
from firmware_config.topics import Channel, Command, DeviceAddress
from tests.collector.helpers import DISTRICT, NOW, register_homes

ADDR = DeviceAddress(DISTRICT, "h-1", "dev-1")
STAFF = Contact("staff", "구청", None, "staff@example.org")


def service(db: Database) -> Service:
    register_homes(db)
    return Service(
        db,
        DispatchPolicy(ack_timeout_s=60, staff=STAFF),
        EscalationPolicy(repeat_after_s=300, staff=STAFF),
    )


def count(db: Database, model: type) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def sos(seq: int = 1) -> SosEvent:
    return SosEvent(device_ts=NOW.timestamp(), seq=seq, source="button")


def test_sos_opens_one_dispatch_queues_notifications_and_acks(database: Database) -> None:
    svc = service(database)
    event = sos()
    out = svc.handle(ADDR.topic(Channel.SOS), event.to_payload(), NOW)
    assert out.kind == "sos" and out.notify and out.dispatch_id is not None
    [(address, ack)] = out.commands
    assert address == ADDR and isinstance(ack, SosAck) and ack.sos_id == event.message_id
    with database.session() as s:
        dispatch = s.get(Dispatch, out.dispatch_id)
        assert dispatch is not None
        assert (dispatch.status, dispatch.priority, dispatch.household_id) == (
            "open",
            "urgent",
            "h-1",
        )
        assert dispatch.next_escalation_at == NOW + dt.timedelta(seconds=60)
        notes = s.scalars(select(Notification)).all()
        assert {(n.channel, n.recipient_role) for n in notes} == {
            ("sms", "caregiver"),
            ("email", "caregiver"),
            ("sms", "guardian"),
        }
        # Each message to a caregiver carries the signed link that opens this dispatch's page.
        for n in notes:
            if n.recipient_role == "guardian":
                assert "/l/" not in n.body
                continue
            token = n.body.split("/l/")[1].split()[0]
            assert svc.links.verify(token, now=NOW) == dispatch.id


def test_a_redelivered_sos_changes_nothing_but_is_acked_again(database: Database) -> None:
    svc = service(database)
    event = sos()
    first = svc.handle(ADDR.topic(Channel.SOS), event.to_payload(), NOW)
    again = svc.handle(ADDR.topic(Channel.SOS), event.to_payload(), NOW)
    assert again.kind == "duplicate" and not again.notify
    assert [ack.dispatch_id for _, ack in again.commands] == [first.dispatch_id]  # type: ignore[union-attr]
    assert count(database, Dispatch) == 1 and count(database, Notification) == 3
    assert count(database, EventRecord) == 1


def test_a_second_sos_while_open_reuses_the_dispatch(database: Database) -> None:
    svc = service(database)
    a = svc.handle(ADDR.topic(Channel.SOS), sos(1).to_payload(), NOW)
    b = svc.handle(ADDR.topic(Channel.SOS), sos(2).to_payload(), NOW)
    assert a.dispatch_id == b.dispatch_id and count(database, Dispatch) == 1
    assert count(database, Notification) == 6


def test_cancel_marks_but_keeps_the_dispatch(database: Database) -> None:
    svc = service(database)
    event = sos()
    opened = svc.handle(ADDR.topic(Channel.SOS), event.to_payload(), NOW)
    cancel = SosCancel(device_ts=NOW.timestamp(), seq=2, sos_id=event.message_id, source="voice")
    later = NOW + dt.timedelta(seconds=5)
    out = svc.handle(ADDR.topic(Channel.SOS_CANCEL), cancel.to_payload(), later)
    assert out.kind == "sos_cancel" and out.dispatch_id == opened.dispatch_id and out.notify
    with database.session() as s:
        dispatch = s.get(Dispatch, opened.dispatch_id)
        assert dispatch is not None and dispatch.status == "open"
        assert dispatch.cancelled_by_resident_at == later
        purposes = sorted(n.purpose for n in s.scalars(select(Notification)))
    assert sum(p.startswith("cancel-") for p in purposes) == 3


def test_heartbeat_state_and_motion_update_the_device(database: Database) -> None:
    svc = service(database)
    hb = Heartbeat(
        device_ts=NOW.timestamp(),
        seq=3,
        interval_s=60,
        motion_count=1,
        speech_s=0,
        wake_word_count=0,
        interactions=0,
        uptime_s=60,
        audio_overruns=0,
        outbox_depth=2,
        agent_version="0.1.0",
    )
    assert svc.handle(ADDR.topic(Channel.HEARTBEAT), hb.to_payload(), NOW).kind == "heartbeat"
    online = State(device_ts=NOW.timestamp(), seq=1, state="online", agent_version="0.1.0")
    assert svc.handle(ADDR.topic(Channel.STATE), online.to_payload(), NOW).kind == "state"
    later = NOW + dt.timedelta(minutes=1)
    assert (
        svc.handle(
            ADDR.topic(Channel.MOTION), MotionEvent(device_ts=1, seq=4).to_payload(), later
        ).kind
        == "motion"
    )
    with database.session() as s:
        device = s.get(Device, "dev-1")
        assert device is not None and device.online
        assert device.last_heartbeat_at == NOW and device.last_life_sign_at == later
        assert (device.last_outbox_depth, device.last_seq, device.agent_version) == (2, 4, "0.1.0")
    offline = State(device_ts=0, seq=0, state="offline")
    svc.handle(ADDR.topic(Channel.STATE), offline.to_payload(), later)
    with database.session() as s:
        device = s.get(Device, "dev-1")
        assert device is not None and not device.online and device.state_changed_at == later
    # heartbeats themselves go to the time-series sink; the store keeps the day's rollup
    with database.session() as s:
        [day] = s.scalars(select(DeviceDay)).all()
        assert (day.device_id, day.heartbeats, day.motion_count) == ("dev-1", 1, 1)


def test_bad_input_is_dead_lettered_with_a_reason_and_ingestion_goes_on(database: Database) -> None:
    svc = service(database)
    other_home = DeviceAddress(DISTRICT, "h-2", "dev-1")  # dev-1 belongs to h-1
    cases = [
        (ADDR.topic(Channel.SOS), b"{not json", "not JSON"),
        (ADDR.topic(Channel.SOS), b'{"source": "button"}', "Field required"),
        ("anbu/v1/seodaemun/h-1/dev-1/audio", b"{}", "unknown channel"),
        (
            DeviceAddress(DISTRICT, "h-9", "dev-9").topic(Channel.SOS),
            sos().to_payload(),
            "not registered",
        ),
        (other_home.topic(Channel.SOS), sos().to_payload(), "spoofed topic"),
        (ADDR.command_topic(Command.SOS_ACK), b"{}", "command topic"),
    ]
    for topic, payload, reason in cases:
        out = svc.handle(topic, payload, NOW)
        assert out.kind == "dead_letter" and reason in (out.reason or ""), (topic, out.reason)
    assert svc.handle(ADDR.topic(Channel.SOS), sos().to_payload(), NOW).kind == "sos"
    with database.session() as s:
        letters = s.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
        assert len(letters) == len(cases)
        assert letters[0].payload == b"{not json"
    assert count(database, Dispatch) == 1


def test_unacknowledged_sos_escalates_once_per_step(database: Database) -> None:
    svc = service(database)
    opened = svc.handle(ADDR.topic(Channel.SOS), sos().to_payload(), NOW)
    before = count(database, Notification)
    assert svc.escalate_due(NOW + dt.timedelta(seconds=59)) == 0
    first = svc.escalate_due(NOW + dt.timedelta(seconds=60))
    assert first == 2  # guardian SMS + staff e-mail
    assert svc.escalate_due(NOW + dt.timedelta(seconds=61)) == 0
    assert svc.escalate_due(NOW + dt.timedelta(seconds=360)) == 1  # staff again
    assert svc.escalate_due(NOW + dt.timedelta(days=1)) == 0
    with database.session() as s:
        dispatch = s.get(Dispatch, opened.dispatch_id)
        assert dispatch is not None and dispatch.escalation_level == 2
    assert count(database, Notification) == before + 3


def test_acknowledged_dispatch_does_not_escalate(database: Database) -> None:
    svc = service(database)
    opened = svc.handle(ADDR.topic(Channel.SOS), sos().to_payload(), NOW)
    with database.session() as s:
        dispatch = s.get(Dispatch, opened.dispatch_id)
        assert dispatch is not None
        dispatch.status = "acknowledged"  # type: ignore[assignment]
    assert svc.escalate_due(NOW + dt.timedelta(hours=1)) == 0
