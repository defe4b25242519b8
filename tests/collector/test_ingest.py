"""Ingest through a real Mosquitto broker (with the Anbu ACL) into a real database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select

from collector.ingest import Ingest
from collector.service import Service
from collector.settings import CollectorSettings
from collector.store.db import Database
from collector.store.models import DeadLetter, Device, Dispatch
from firmware_config.messages import SosAck, SosEvent, State, decode_command
from firmware_config.topics import Channel, Command, DeviceAddress
from tests.collector.helpers import DISTRICT, register_homes
from tests.support.mosquitto import COLLECTOR_USER, Broker
from tests.support.mqtt_client import TestClient

ADDR = DeviceAddress(DISTRICT, "h-1", "dev-1")


def wait_until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.fixture
def ingest(broker: Broker, database: Database) -> Iterator[Ingest]:
    register_homes(database)
    settings = CollectorSettings(
        mqtt_url=broker.url,
        mqtt_username=COLLECTOR_USER,
        mqtt_password=broker.password(COLLECTOR_USER),
        database_url=database.url,
        ingest_bulk_process=False,  # the lanes in this process (test_bulk_process: the child)
    )
    notified: list[int] = []
    ing = Ingest(settings, Service(database), on_notify=lambda: notified.append(1))
    ing.start()
    assert ing.wait_connected(5)
    time.sleep(0.1)  # let the SUBACK land
    yield ing
    ing.stop()


def dispatches(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Dispatch)) or 0)


def test_sos_is_stored_and_acknowledged_back_to_the_device(
    ingest: Ingest, broker: Broker, database: Database
) -> None:
    with TestClient(broker, "dev-1").connect() as device:
        device.subscribe(ADDR.command_filter)
        sos = SosEvent(device_ts=time.time(), seq=1, source="button")
        assert device.publish(ADDR.topic(Channel.SOS), sos.to_payload()) == 0
        reply = device.next_message(timeout_s=5)
        ack = decode_command(Command.SOS_ACK, reply.payload)
        assert isinstance(ack, SosAck) and ack.sos_id == sos.message_id
    assert dispatches(database) == 1


def test_bad_payload_is_dead_lettered_and_the_next_message_still_lands(
    ingest: Ingest, broker: Broker, database: Database
) -> None:
    with TestClient(broker, "dev-1").connect() as device:
        device.publish(ADDR.topic(Channel.SOS), b"\x00garbage")
        device.publish(
            ADDR.topic(Channel.SOS), SosEvent(device_ts=1, seq=2, source="button").to_payload()
        )
        wait_until(lambda: dispatches(database) == 1)
        # the events lane applies the valid events of a batch first, then its dead letters
        wait_until(lambda: _dead_letters(database) == 1)
    with database.session() as s:
        [letter] = s.scalars(select(DeadLetter)).all()
        assert "not JSON" in letter.reason


def test_retained_state_and_last_will_drive_online(
    ingest: Ingest, broker: Broker, database: Database
) -> None:
    def online() -> bool | None:
        with database.session() as s:
            device = s.get(Device, "dev-1")
            return None if device is None else device.online

    device = TestClient(broker, "dev-1")
    will = State(device_ts=time.time(), seq=0, state="offline")
    device.client.will_set(ADDR.topic(Channel.STATE), will.to_payload(), qos=1, retain=True)
    device.connect()
    birth = State(device_ts=time.time(), seq=1, state="online")
    device.publish(ADDR.topic(Channel.STATE), birth.to_payload(), retain=True)
    wait_until(lambda: online() is True)
    device.client.socket().close()  # an abrupt loss of the connection: the broker sends the will
    wait_until(lambda: online() is False, timeout_s=10)


POISON = [
    b"[" * 2048,
    b'{"device_ts": Infinity, "seq": 1}',
    b'{"schema_version":1,"device_ts":1e12,"seq":1,"source":"button"}',
    b'{"schema_version":1,"device_ts":1,"seq":9223372036854775808,"source":"button"}',
    b'{"schema_version":1,"device_ts":1,"seq":1,"source":"voice","phrase":"\\u0000"}',
    b'{"schema_version":1,"device_ts":1,"seq":1,"source":"button"}',  # no message_id
]


def _start_ingest(broker: Broker, database: Database) -> Ingest:
    settings = CollectorSettings(
        mqtt_url=broker.url,
        mqtt_username=COLLECTOR_USER,
        mqtt_password=broker.password(COLLECTOR_USER),
        database_url=database.url,
        ingest_bulk_process=False,  # the lanes in this process (test_bulk_process: the child)
    )
    ing = Ingest(settings, Service(database))
    ing.start()
    assert ing.wait_connected(5)
    time.sleep(0.1)
    return ing


def _sos_is_acked(device: TestClient, seq: int) -> bool:
    sos = SosEvent(device_ts=time.time(), seq=seq, source="button")
    device.publish(ADDR.topic(Channel.SOS), sos.to_payload())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reply = device.next_message(timeout_s=10)
        if reply.topic.endswith("/cmd/sos_ack"):
            ack = decode_command(Command.SOS_ACK, reply.payload)
            if isinstance(ack, SosAck) and ack.sos_id == sos.message_id:
                return True
    return False


def test_poison_through_the_broker_never_stops_ingestion_even_retained_or_after_restart(
    ingest: Ingest, broker: Broker, database: Database
) -> None:
    with TestClient(broker, "dev-1").connect() as device:
        device.subscribe(ADDR.command_filter)
        for payload in POISON:
            for channel in (Channel.SOS, Channel.HEARTBEAT, Channel.SOS_CANCEL):
                device.publish(ADDR.topic(channel), payload)
        device.publish(ADDR.topic(Channel.STATE), POISON[0], retain=True)
        assert _sos_is_acked(device, 100)
        wait_until(lambda: _dead_letters(database) == 3 * len(POISON) + 1)
        # A new collector gets the retained poison again, and still works.
        ingest.stop()
        again = _start_ingest(broker, database)
        try:
            assert _sos_is_acked(device, 101)
            wait_until(lambda: _dead_letters(database) == 3 * len(POISON) + 2)
        finally:
            again.stop()
    assert dispatches(database) == 1  # the second SOS joined the open dispatch


def _dead_letters(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(DeadLetter)) or 0)


def test_the_ingest_reconnects_by_itself_after_the_broker_is_killed(
    ingest: Ingest, broker: Broker, database: Database
) -> None:
    broker.kill()
    wait_until(lambda: not ingest.connected)
    assert ingest.health()["mqtt_connected"] is False
    broker.restart()
    assert ingest.wait_connected(40)
    time.sleep(0.2)
    with TestClient(broker, "dev-1").connect() as device:
        device.subscribe(ADDR.command_filter)
        assert _sos_is_acked(device, 1)
